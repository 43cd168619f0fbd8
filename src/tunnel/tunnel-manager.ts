// The daemon's CoreDeviceProxy tunnels, one per device at most. start():
// a lockdown session with the stored pair record, StartService
// CoreDeviceProxy, a mux connection to its port, then the data plane runs
// TLS and the CDTunnel handshake; the device's answer is checked here
// (src/protocol/cdtunnel.ts) and the tunnel's interface brought up with it,
// with the send MSS (default 1340, settable) and a go-ios-style preamble
// listener on 127.0.0.1. Starts asked for at once share one attempt. From
// then on a tunnel's bytes, and every stream's, stay in native code. A
// device that leaves, or a tunnel that the data plane ends (TLS, a bad
// packet, the device resetting it), is forgotten with a log line that says
// why; a failed start ends that start only.
import { EventEmitter } from 'node:events';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import type { MuxEngine, TunnelClosedEvent } from '../native/mux-engine.js';
import type { PairRecordStore } from '../pairing/store.js';
import {
  buildClientHandshakeRequest,
  DEFAULT_SEND_MSS,
  HOST_REQUESTED_MTU,
  MAX_SEND_MSS,
  MIN_SEND_MSS,
  parseServerHandshakeResponse,
  TCP_IPV6_OVERHEAD,
} from '../protocol/cdtunnel.js';
import { parseIpv6 } from '../protocol/ipv6.js';
import type { TunnelDescription } from '../protocol/tunnel-messages.js';
import type { Logger } from '../util/log.js';
import { TunnelError } from './errors.js';
import type { KernelInterfaces } from './kernel-interface.js';

/** Where each tunnel's preamble listener binds: local programs only. */
export const PREAMBLE_HOST = '127.0.0.1';

export interface ManagedTunnel extends TunnelDescription {
  /** The data plane's tunnel id. */
  tunnel: number;
  /** The device's engine handle. */
  handle: number;
  startedAt: number;
}

export interface TunnelManagerOptions {
  engine: MuxEngine;
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  /** Where the in-process lockdown client sockets are made. */
  socketDir: string;
  /** The send MSS when a start names none (default 1340). */
  defaultSendMss?: number;
  lockdownTimeoutMs?: number;
  /** How long a tunnel TCP connect may take (the engine's connect timeout when omitted). */
  connectTimeoutMs?: number;
  /** Kernel interfaces for tunnels (TUN mode) where the daemon may make them; userspace only when omitted. */
  interfaces?: KernelInterfaces;
}

export function checkSendMss(mss: number): number {
  if (!Number.isInteger(mss) || mss < MIN_SEND_MSS || mss > MAX_SEND_MSS) {
    throw new TunnelError(`SendMSS is an integer in ${MIN_SEND_MSS}..${MAX_SEND_MSS}, not ${mss}`, 'EINVAL');
  }
  return mss;
}

export interface TunnelDown {
  udid: string;
  deviceId: number;
  handle: number;
  why: string;
  /** Stopped on request (TunnelStop, the API, the daemon stopping), not failed. */
  requested: boolean;
  /** When it came up (ms since the epoch). */
  startedAt: number;
}

export interface TunnelManagerEvents {
  up: [ManagedTunnel];
  down: [TunnelDown];
}

export class TunnelManager extends EventEmitter<TunnelManagerEvents> {
  private readonly byHandle = new Map<number, ManagedTunnel>();
  private readonly byTunnel = new Map<number, ManagedTunnel>();
  private readonly starting = new Map<number, Promise<ManagedTunnel>>();
  private readonly onTunnelClosed = (ev: TunnelClosedEvent) => this.tunnelClosed(ev);
  private readonly onDetached = ({ handle }: { handle: number }) => this.deviceGone(handle);
  private closed = false;

  constructor(private readonly o: TunnelManagerOptions) {
    super();
    checkSendMss(o.defaultSendMss ?? DEFAULT_SEND_MSS);
    o.engine.on('tunnelClosed', this.onTunnelClosed);
    o.engine.on('detached', this.onDetached);
  }

  /** The device's tunnel: the one it has, the one being started, or a new one. */
  start(device: DeviceRecord, options: { sendMss?: number } = {}): Promise<ManagedTunnel> {
    const existing = this.byHandle.get(device.handle);
    if (existing) return Promise.resolve(existing);
    let starting = this.starting.get(device.handle);
    if (!starting) {
      starting = this.open(device, options.sendMss ?? this.o.defaultSendMss ?? DEFAULT_SEND_MSS).finally(() => {
        this.starting.delete(device.handle);
      });
      this.starting.set(device.handle, starting);
    }
    return starting;
  }

  list(): ManagedTunnel[] {
    return [...this.byHandle.values()].sort((a, b) => a.deviceId - b.deviceId);
  }

  find(device: DeviceRecord): ManagedTunnel | undefined {
    return this.byHandle.get(device.handle);
  }

  /** Ends the device's tunnel; false if it has none. */
  stop(device: DeviceRecord, why = 'stopped on request'): boolean {
    const t = this.byHandle.get(device.handle);
    if (!t) return false;
    this.forget(t, why, true);
    this.closeQuietly(t.tunnel);
    return true;
  }

  /**
   * A TCP connection through the device's tunnel to `address` (the device's
   * own by default) and `port`; resolves with the stream id once the device
   * accepted, rejects with the engine's reason if it was refused or timed out.
   */
  connect(device: DeviceRecord, port: number, address?: string): Promise<number> {
    const t = this.byHandle.get(device.handle);
    if (!t) {
      return Promise.reject(
        new TunnelError(`device ${device.deviceId} (${device.serialNumber}) has no tunnel; start one first (tsmuxd tunnel start ${device.serialNumber})`, 'ENOTUNNEL'),
      );
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) return Promise.reject(new TunnelError(`port ${port} is not in 1..65535`, 'EINVAL'));
    if (address !== undefined && !parseIpv6(address)) return Promise.reject(new TunnelError(`'${address}' is not an IPv6 address`, 'EINVAL'));
    return this.o.engine.tunnelConnect(t.tunnel, address ?? t.serverAddress, port, this.o.connectTimeoutMs);
  }

  /** The daemon stops: every tunnel ends with it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.o.engine.off('tunnelClosed', this.onTunnelClosed);
    this.o.engine.off('detached', this.onDetached);
    for (const t of this.list()) {
      this.forget(t, 'the daemon is stopping', true);
      this.closeQuietly(t.tunnel);
    }
  }

  private async open(device: DeviceRecord, sendMss: number): Promise<ManagedTunnel> {
    const { engine, devices, log } = this.o;
    const udid = device.serialNumber;
    checkSendMss(sendMss);
    // Imported at the first start: a daemon that never tunnels never loads it.
    const { startCoreDeviceProxyService } = await import('./core-device-proxy.js');
    const service = await startCoreDeviceProxyService(this.o, device);
    const gone = () => new TunnelError(`device ${device.deviceId} (${udid}) left while its tunnel was starting`, 'ENODEV');
    if (!devices.has(device) || this.closed) throw gone();
    const conn = await engine.connect(device.handle, service.port);
    const request = buildClientHandshakeRequest(HOST_REQUESTED_MTU);
    const { tunnel, body } = await engine.startTunnel(conn, { certPem: service.certPem, keyPem: service.keyPem, request });
    try {
      if (!devices.has(device) || this.closed) throw gone();
      let answer;
      try {
        answer = parseServerHandshakeResponse(body);
      } catch (err) {
        throw new TunnelError(`the device's CDTunnel answer is unusable: ${(err as Error).message}`, 'EPROTO');
      }
      const mss = Math.min(sendMss, answer.mtu - TCP_IPV6_OVERHEAD);
      engine.configureTunnel(tunnel, { localAddress: answer.clientAddress, peerAddress: answer.serverAddress, mtu: answer.mtu, sendMss: mss });
      const preamblePort = engine.listenTunnelPreamble(tunnel, PREAMBLE_HOST, 0);
      const kernel = this.o.interfaces?.attach(tunnel, udid, answer.clientAddress, mss) ?? { mode: 'userspace' as const };
      const t: ManagedTunnel = {
        tunnel,
        handle: device.handle,
        udid,
        deviceId: device.deviceId,
        address: answer.clientAddress,
        serverAddress: answer.serverAddress,
        serverRsdPort: answer.serverRSDPort,
        mtu: answer.mtu,
        sendMss: mss,
        preambleHost: PREAMBLE_HOST,
        preamblePort,
        ...kernel,
        startedAt: Date.now(),
      };
      this.byHandle.set(device.handle, t);
      this.byTunnel.set(tunnel, t);
      log.notice(
        `tunnel to ${udid} up: [${t.address}] <-> [${t.serverAddress}], RSD port ${t.serverRsdPort}, MTU ${t.mtu}, send MSS ${mss}, preamble ${PREAMBLE_HOST}:${preamblePort}, ${kernel.interfaceName ? `interface ${kernel.interfaceName}` : 'userspace'}`,
      );
      this.emit('up', t);
      return t;
    } catch (err) {
      this.closeQuietly(tunnel);
      throw err;
    }
  }

  private tunnelClosed(ev: TunnelClosedEvent): void {
    const t = this.byTunnel.get(ev.tunnel);
    if (t) this.forget(t, `${ev.reason} (${ev.code})`);
  }

  private deviceGone(handle: number): void {
    const t = this.byHandle.get(handle);
    if (!t) return;
    this.forget(t, 'its device left');
    this.closeQuietly(t.tunnel);
  }

  private forget(t: ManagedTunnel, why: string, requested = false): void {
    if (this.byHandle.get(t.handle) === t) this.byHandle.delete(t.handle);
    this.byTunnel.delete(t.tunnel);
    this.o.log.notice(`tunnel to ${t.udid} closed: ${why}`);
    this.emit('down', { udid: t.udid, deviceId: t.deviceId, handle: t.handle, why, requested, startedAt: t.startedAt });
  }

  /** A tunnel the data plane may have ended already. */
  private closeQuietly(tunnel: number): void {
    try {
      this.o.engine.closeTunnel(tunnel);
    } catch {
      // already gone
    }
  }
}
