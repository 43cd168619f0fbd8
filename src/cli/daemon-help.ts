// `tsmuxd -h`: the daemon's options, usbmuxd's plus ours. Its own module so
// `tsmuxd help` prints it without loading the daemon.
export const DAEMON_HELP = `usage: tsmuxd [options]

  -h, --help             this text
  -f, --foreground       do not daemonize; log to stderr
  -v, --verbose          more log output (repeat for more)
  -V, --version          print the version
  -U, --user USER        drop privileges to USER after creating the socket
  -n, --disable-hotplug  no USB hotplug: look for devices at start and on SIGUSR2
  -z, --enable-exit      honour SIGUSR1 (exit if no devices)
  -p, --no-preflight     skip the lockdown preflight (devices are visible at once)
  -u, --udev             udev mode: -n -z
  -s, --systemd          systemd mode: -z -f
  -C, --config-dir DIR   pair records (default /var/lib/lockdown as root, else per user)
  -S, --socket ADDR      UNIX:PATH, PATH or HOST:PORT (default /var/run/usbmuxd as root, else per user)
  -P, --pidfile PATH     pidfile with a lock, or NONE
  -x, --exit             ask a running instance to exit if it has no devices (SIGUSR1)
  -X, --force-exit       make a running instance exit (SIGTERM)
  -l, --logfile FILE     append the log to FILE
      --json-log         log JSON lines
      --cable PATH       accept virtual-cable devices on PATH (repeatable)
      --sim N            attach N simulated phones (child processes; see tsmuxd sim)
      --sim-trust MODE   how they answer Pair: auto (default), prompt or deny
      --sim-state DIR    keep their identities and pair records here
                         (default /var/lib/tsmuxd/sims as root, else ~/.local/state/tsmuxd/sims)
      --sim-product-version V   the iOS version they report (below 17.4: no CoreDeviceProxy)
      --sim-tunnel-max-mtu N    the largest MTU they grant a tunnel (default 16000)
      --sim-tunnel-drop-oversize N  as a phone under load, they drop tunnel packets over N bytes
      --sim-tunnel-loss-rate R  they drop this fraction of tunnel packets (0 to <1)
      --tunnel-mss N     the send MSS of CoreDeviceProxy tunnels (default 1340)
      --tunnels auto|off each paired iOS 17.4+ phone gets its tunnel without
                         being asked, rebuilt with backoff (default auto)
      --wifi auto|off    list paired phones on the network (mDNS _apple-mobdev2._tcp,
                         a heartbeat) as Network entries (default auto; docs/wifi.md)
      --wifi-grace-ms N  a network phone is gone N ms after a missed heartbeat
                         Interval (default 5000)
      --capture FILE     write everything that crosses the daemon, from start-up,
                         to FILE as pcapng (docs/capture.md)
      --tun auto|off     give each tunnel a kernel interface when the daemon
                         may (root or CAP_NET_ADMIN); else userspace (default auto)
      --tun-prefix NAME  the interfaces' name prefix (default tsmux: tsmux0...)
      --no-usb           do not use libusb
      --window BYTES     receive window we advertise per connection (default 256K; K/M suffixes)
      --tunneld-api ADDR pymobiledevice3's tunneld HTTP API on loopback ADDR, or off
                         (default 127.0.0.1:49151; a taken port is a warning)
      --go-ios-api ADDR  go-ios's tunnel agent HTTP API on loopback ADDR, or off
                         (default 127.0.0.1:60105)

  remote usbmux (docs/remote.md; nothing is served remotely unless asked):
      --remote-listen HOST:PORT  serve the usbmuxd protocol to other hosts over TLS 1.3,
                         client certificates required
      --remote-cert FILE, --remote-key FILE, --remote-ca FILE
                         this daemon's certificate and key, and the CA every peer's must
                         chain to (the listener's, and remote hosts added without their own)
      --remote-insecure  the listener is plain TCP, unauthenticated (usbfluxd's kind); warns
      --remote-pair-records read-only|read-write|none
                         what remote clients may do with pair records (default read-only)
      --no-advertise     no DNS-SD record for the listener (_tsmuxd._tcp; plain:
                         usbfluxd's _remote-mobdev._tcp)
      --remote-discover off|tls|all  add remote hosts found over DNS-SD: ours (TLS),
                         or usbfluxd's plain ones too (default off)
      --remote-keepalive-ms N  ping each remote host this often; one unanswered by the
                         next ping detaches its phones (default 5000)
`;
