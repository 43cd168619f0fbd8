/* lwIP's configuration for tsmuxd's tunnels (native/tunnel).
 *
 * One stack per process, NO_SYS=1: no threads, no locks. The engine's event
 * thread is the only thread that ever calls into lwIP (tunnel/stack.h checks
 * it), and it drives lwIP's timers itself. Every tunnel is one netif.
 *
 * Only IPv6 and TCP: a CoreDeviceProxy tunnel carries nothing else that we
 * terminate (ICMPv6 answers errors and echo). Memory comes from malloc and is
 * bounded by what we allow per stream (the windows below) and by the caps in
 * tunnel/limits.h, not by lwIP's pools. */
#ifndef TSMUXD_LWIPOPTS_H
#define TSMUXD_LWIPOPTS_H

#define NO_SYS                          1
#define LWIP_TIMERS                     1
#define SYS_LIGHTWEIGHT_PROT            0
#define LWIP_NETCONN                    0
#define LWIP_SOCKET                     0
#define LWIP_ALTCP                      0
/* htons & co. come from the C library (<arpa/inet.h>); lwIP's own macros of
 * the same names would clash with its declarations in C++. */
#define LWIP_DONT_PROVIDE_BYTEORDER_FUNCTIONS 1

/* Memory: malloc for the heap and for every pool, so a tunnel with many
 * streams is limited by our caps, not by pool sizes fixed at build time. */
#define MEM_LIBC_MALLOC                 1
#define MEMP_MEM_MALLOC                 1
#define MEM_ALIGNMENT                   8

/* Protocols. */
#define LWIP_IPV4                       0
#define LWIP_IPV6                       1
#define LWIP_ICMP6                      1
#define LWIP_TCP                        1
#define LWIP_UDP                        0
#define LWIP_RAW                        0
#define LWIP_DNS                        0
#define LWIP_ARP                        0
#define LWIP_ETHERNET                   0
#define LWIP_IPV6_MLD                   0
#define LWIP_IPV6_AUTOCONFIG            0
#define LWIP_IPV6_DHCP6                 0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT   0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS   0 /* the addresses are given, not probed */
#define LWIP_IPV6_SCOPES                0
#define LWIP_IPV6_FRAG                  0 /* we never send past the MTU */
#define LWIP_IPV6_REASS                 0 /* a phone's tunnel does not fragment */
#define LWIP_IPV6_FORWARD               0
#define LWIP_ND6_TCP_REACHABILITY_HINTS 0
#define LWIP_MULTICAST_PING             0
#define LWIP_SINGLE_NETIF               0 /* one netif per tunnel */

/* TCP.
 * TCP_MSS is the largest segment we can take; what a stream really uses is
 * min(TCP_MSS, the tunnel's MTU - 60) advertised, and the tunnel's send MSS
 * (1340 by default, tunnel/stream.cc clamps it after the handshake) for what
 * we send: real devices drop larger packets under load. We ask for an MTU of
 * 16000 as pymobiledevice3 and idevice do. */
#define TCP_MSS                         15940
/* 4 MiB windows: pymobiledevice3 measured 8 MB/s with 64 KiB, 40 MB/s with
 * 4 MiB. 4 MiB >> 7 fits the 16-bit window field. What lwIP holds for a
 * stream is bounded by this window: a stream ACKs (tcp_recved) only what its
 * local socket took. */
#define LWIP_WND_SCALE                  1
#define TCP_RCV_SCALE                   7
#define TCP_WND                         (4 * 1024 * 1024)
/* Send buffer per stream: enough for the tunnel's bandwidth-delay product
 * (tens of MB/s times a millisecond or two) with room to spare. lwIP walks
 * its unsent list on each tcp_write, so streams write in large chunks. */
#define TCP_SND_BUF                     (512 * 1024)
#define TCP_SND_QUEUELEN                4096
/* Only the netconn API reads it; init.c wants it 4 MSS under 64 KiB. */
#define TCP_SNDLOWAT                    1024
#define TCP_SNDQUEUELOWAT               (TCP_SND_QUEUELEN / 2)
#define TCP_QUEUE_OOSEQ                 1
#define LWIP_TCP_SACK_OUT               1
#define LWIP_TCP_MAX_SACK_NUM           4
#define TCP_LISTEN_BACKLOG              0
#define LWIP_TCP_KEEPALIVE              0 /* the mux connection under the tunnel is the liveness check */
#define LWIP_TCP_TIMESTAMPS             0
#define TCP_CALCULATE_EFF_SEND_MSS      1
/* Our own streams' local ports, 61440-65535: above Linux's ephemeral range,
 * so a tunnel in TUN mode gives lwIP these and the kernel the rest
 * (tunnel_tun.cc; kLwipLocalPortFirst in limits.h). The mask keeps a random
 * start inside the range, which must stay a power-of-two block. */
#define TCP_LOCAL_PORT_RANGE_START      0xf000
#define TCP_LOCAL_PORT_RANGE_END        0xffff
#define TCP_ENSURE_LOCAL_PORT_RANGE(port) ((u16_t)(((port) & (u16_t)~TCP_LOCAL_PORT_RANGE_START) + TCP_LOCAL_PORT_RANGE_START))
/* The fast timer (delayed ACKs, refused data) ticks every TCP_TMR_INTERVAL;
 * the slow one (retransmission, timeouts) every second tick, and the RTO is
 * counted in slow ticks. lwIP's 250 ms makes every retransmission timeout at
 * least half a second: with 1 % loss an upload fell to 1.2 MB/s. At 10 ms it
 * keeps 8-11 MB/s (docs/tunnel.md has the runs). tunnel/stack.cc ticks this
 * fast only while some stream has data in flight or an ACK pending, and
 * every 250 ms otherwise, so an idle tunnel costs 4 wakeups a second. */
#ifndef TCP_TMR_INTERVAL
#define TCP_TMR_INTERVAL                10
#endif
/* TIME_WAIT lasts 2 MSL. In slow ticks of an idle stack (250 ms, see above)
 * lwIP's 60 s would become 25 minutes of pcbs; nothing inside a tunnel
 * outlives a second in flight. */
#define TCP_MSL                         1000UL

/* Callbacks we use. */
#define LWIP_NETIF_STATUS_CALLBACK      0
#define LWIP_NETIF_LINK_CALLBACK        0
#define LWIP_NETIF_API                  0
#define LWIP_NUM_NETIF_CLIENT_DATA      0
#define LWIP_CALLBACK_API               1

/* Checksums: generated (a phone checks them) and checked, per netif
 * (tunnel/tunnel_ports.cc): the sim's stack checks everything, as a phone
 * does; the daemon does not check the TCP checksums of what the phone sends,
 * because each packet already arrived authenticated by TLS from it, and that
 * check was a whole extra pass over every byte downloaded. Checksums are made
 * while tcp_write() copies (CHECKSUM_ON_COPY), 32 bits at a time (algorithm 3). */
#define LWIP_CHECKSUM_CTRL_PER_NETIF    1
#define LWIP_CHECKSUM_ON_COPY           1
#define LWIP_CHKSUM_ALGORITHM           3
#define CHECKSUM_GEN_IP6                1
#define CHECKSUM_GEN_TCP                1
#define CHECKSUM_GEN_ICMP6              1
#define CHECKSUM_CHECK_IP6              1
#define CHECKSUM_CHECK_TCP              1
#define CHECKSUM_CHECK_ICMP6            1

#define LWIP_STATS                      0
#define LWIP_STATS_DISPLAY              0
#define LWIP_PERF                       0

#endif /* TSMUXD_LWIPOPTS_H */
