// A typed client for any usbmuxd-compatible daemon (Apple's, libimobiledevice's
// or ours). Like libusbmuxd, it opens one connection per request.
import type net from 'node:net';

import type { PlistDict } from '../protocol/plist-codec.js';
import { encodeConnectBinary, MessageType, swapPort } from '../protocol/usbmux.js';
import { Channel, resultError, UsbmuxError, type ChannelOptions, type Reply } from './channel.js';
import { parseStatsReply, STATS_MESSAGE, type DaemonStats } from './stats.js';
import { CAPTURE_MESSAGE, type CaptureRequest } from '../protocol/capture.js';
import {
  parseTunnelDict,
  TUNNEL_CONNECT,
  TUNNEL_LIST,
  TUNNEL_START,
  TUNNEL_STOP,
  type TunnelDescription,
} from '../protocol/tunnel-messages.js';

export type { TunnelDescription } from '../protocol/tunnel-messages.js';

/** A tunnel start takes a lockdown session, TLS and the handshake: more than the usual request. */
const TUNNEL_START_TIMEOUT_MS = 45_000;
/** Longer than the daemon's own tunnel connect timeout (10 s), so its answer is what we report. */
const TUNNEL_CONNECT_TIMEOUT_MS = 15_000;

/** A device by DeviceID (number) or UDID (string), as the tunnel requests take it. */
const deviceKey = (target: number | string): PlistDict => (typeof target === 'number' ? { DeviceID: target } : { UDID: target });

export interface UsbmuxDevice {
  deviceId: number;
  serialNumber: string;
  productId: number;
  locationId: number;
  /** The full Properties dictionary (plist protocol only). */
  properties: PlistDict;
}

export type UsbmuxEvent =
  | { type: 'attached'; device: UsbmuxDevice }
  | { type: 'detached'; deviceId: number }
  | { type: 'paired'; deviceId: number };

function deviceFromAttached(r: Reply): UsbmuxDevice | null {
  if (r.kind === 'attached') {
    return { deviceId: r.deviceId, serialNumber: r.serial, productId: r.productId, locationId: r.location, properties: {} };
  }
  if (r.kind === 'plist' && r.dict.MessageType === 'Attached') {
    const p = (r.dict.Properties ?? {}) as PlistDict;
    return {
      deviceId: Number(r.dict.DeviceID),
      serialNumber: String(p.SerialNumber ?? ''),
      productId: Number(p.ProductID ?? 0),
      locationId: Number(p.LocationID ?? 0),
      properties: p,
    };
  }
  return null;
}

function toEvent(r: Reply): UsbmuxEvent | null {
  const device = deviceFromAttached(r);
  if (device) return { type: 'attached', device };
  if (r.kind === 'removed') return { type: 'detached', deviceId: r.deviceId };
  if (r.kind === 'paired') return { type: 'paired', deviceId: r.deviceId };
  if (r.kind === 'plist' && (r.dict.MessageType === 'Detached' || r.dict.MessageType === 'Paired')) {
    return { type: r.dict.MessageType === 'Detached' ? 'detached' : 'paired', deviceId: Number(r.dict.DeviceID) };
  }
  return null;
}

export interface Listener extends AsyncIterable<UsbmuxEvent> {
  close(): void;
}

export class UsbmuxClient {
  constructor(private readonly options: ChannelOptions = {}) {}

  private async expectOk(channel: Channel, tag: number, what: string): Promise<void> {
    const r = await channel.reply(tag);
    if (r.kind !== 'result') throw new UsbmuxError(`${what}: unexpected answer`, 'ERR_USBMUX_PROTOCOL');
    if (r.result !== 0) throw resultError(r.result, what);
  }

  private async request(dict: PlistDict, what: string): Promise<PlistDict> {
    const channel = await Channel.open({ ...this.options, version: 1 });
    try {
      const r = await channel.reply(channel.sendPlist(dict));
      if (r.kind === 'result') throw resultError(r.result, what);
      if (r.kind !== 'plist') throw new UsbmuxError(`${what}: unexpected answer`, 'ERR_USBMUX_PROTOCOL');
      return r.dict;
    } finally {
      channel.close();
    }
  }

  /** Events from the daemon, beginning with an Attached per present device. */
  async listen(): Promise<Listener> {
    const channel = await Channel.open(this.options);
    const tag = channel.version === 1 ? channel.sendPlist({ MessageType: 'Listen' }) : channel.sendBinary(MessageType.Listen);
    await this.expectOk(channel, tag, 'Listen');
    let closed = false;
    return {
      close: () => {
        closed = true;
        channel.close();
      },
      async *[Symbol.asyncIterator]() {
        while (!closed) {
          let r: Reply;
          try {
            r = await channel.next(2 ** 31 - 1);
          } catch (err) {
            if (closed) return;
            throw err;
          }
          const ev = toEvent(r);
          if (ev) yield ev;
        }
      },
    };
  }

  async listDevices(): Promise<UsbmuxDevice[]> {
    if ((this.options.version ?? 1) === 0) {
      // The binary protocol has no ListDevices: Listen and collect until quiet,
      // as libusbmuxd does.
      const listener = await this.listen();
      const devices: UsbmuxDevice[] = [];
      const it = listener[Symbol.asyncIterator]();
      for (;;) {
        const next = await Promise.race([it.next(), new Promise<null>((r) => setTimeout(() => r(null), 100))]);
        if (!next || next.done) break;
        if (next.value.type === 'attached') devices.push(next.value.device);
      }
      listener.close();
      return devices;
    }
    const answer = await this.request({ MessageType: 'ListDevices' }, 'ListDevices');
    const list = Array.isArray(answer.DeviceList) ? answer.DeviceList : [];
    return list
      .map((entry) => deviceFromAttached({ kind: 'plist', tag: 0, dict: entry as PlistDict }))
      .filter((d): d is UsbmuxDevice => d !== null);
  }

  /** Connects to `port` on a device (DeviceID or UDID); the socket is then a raw pipe. */
  async connect(target: number | string, port: number): Promise<net.Socket> {
    let deviceId = typeof target === 'number' ? target : NaN;
    if (typeof target === 'string') {
      const found = (await this.listDevices()).find((d) => d.serialNumber === target);
      if (!found) throw new UsbmuxError(`no device with UDID ${target}`, 'BADDEV', 2);
      deviceId = found.deviceId;
    }
    const channel = await Channel.open(this.options);
    try {
      const tag =
        channel.version === 1
          ? channel.sendPlist({ MessageType: 'Connect', DeviceID: deviceId, PortNumber: swapPort(port) })
          : channel.sendBinary(MessageType.Connect, encodeConnectBinary(0, deviceId, port).subarray(16));
      await this.expectOk(channel, tag, `Connect to device ${deviceId} port ${port}`);
    } catch (err) {
      channel.close();
      throw err;
    }
    return channel.release();
  }

  async readBUID(): Promise<string> {
    const answer = await this.request({ MessageType: 'ReadBUID' }, 'ReadBUID');
    return String(answer.BUID);
  }

  async readPairRecord(udid: string): Promise<Buffer> {
    const answer = await this.request({ MessageType: 'ReadPairRecord', PairRecordID: udid }, 'ReadPairRecord');
    const data = answer.PairRecordData;
    if (!(data instanceof Uint8Array)) throw new UsbmuxError('ReadPairRecord: no PairRecordData', 'ERR_USBMUX_PROTOCOL');
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  private async command(dict: PlistDict, what: string): Promise<void> {
    const channel = await Channel.open({ ...this.options, version: 1 });
    try {
      await this.expectOk(channel, channel.sendPlist(dict), what);
    } finally {
      channel.close();
    }
  }

  async savePairRecord(udid: string, data: Buffer, deviceId?: number): Promise<void> {
    const dict: PlistDict = { MessageType: 'SavePairRecord', PairRecordID: udid, PairRecordData: data };
    if (deviceId !== undefined) dict.DeviceID = deviceId;
    await this.command(dict, 'SavePairRecord');
  }

  async deletePairRecord(udid: string): Promise<void> {
    await this.command({ MessageType: 'DeletePairRecord', PairRecordID: udid }, 'DeletePairRecord');
  }

  /**
   * tsmuxd's per-device and per-connection counters. Another daemon answers
   * Result 1 to the request: that throws a UsbmuxError with code
   * ERR_STATS_UNSUPPORTED. tsmuxd answers other users than its own and root
   * Result 13: ERR_STATS_DENIED.
   */
  async stats(): Promise<DaemonStats> {
    let answer: PlistDict;
    try {
      answer = await this.request({ MessageType: STATS_MESSAGE }, 'stats');
    } catch (err) {
      if (err instanceof UsbmuxError && err.result === 1) {
        throw new UsbmuxError('the daemon does not support stats (it answered Result 1: not tsmuxd?)', 'ERR_STATS_UNSUPPORTED', 1);
      }
      if (err instanceof UsbmuxError && err.result === 13) {
        throw new UsbmuxError("the daemon refused stats: only its own user and root may ask (Result 13, EACCES)", 'ERR_STATS_DENIED', 13);
      }
      throw err;
    }
    return parseStatsReply(answer);
  }

  /**
   * tsmuxd's tunnel requests answer a Result dictionary with what they add;
   * a non-zero Number throws with the daemon's Error text. Another daemon's
   * Result 1 throws ERR_TUNNEL_UNSUPPORTED.
   */
  private async tunnelRequest(dict: PlistDict, what: string, timeoutMs?: number): Promise<PlistDict> {
    const channel = await Channel.open({ ...this.options, version: 1 });
    try {
      const r = await channel.reply(channel.sendPlist(dict), timeoutMs);
      if (r.kind !== 'result') throw new UsbmuxError(`${what}: unexpected answer`, 'ERR_USBMUX_PROTOCOL');
      if (r.result === 0) return r.dict ?? {};
      if (r.result === 1 && r.dict?.Error === undefined) {
        throw new UsbmuxError(`${what}: the daemon has no tunnels (it answered Result 1: not tsmuxd?)`, 'ERR_TUNNEL_UNSUPPORTED', 1);
      }
      if (r.result === 13 && r.dict?.Error === undefined) {
        throw new UsbmuxError(`${what}: refused: only the daemon's own user and root may list or stop tunnels (Result 13, EACCES)`, 'ERR_TUNNEL_DENIED', 13);
      }
      throw resultError(r.result, what, typeof r.dict?.Error === 'string' ? r.dict.Error : undefined);
    } finally {
      channel.close();
    }
  }

  /** tsmuxd: the device's CoreDeviceProxy tunnel, started if it has none (iOS 17.4+). */
  async startTunnel(target: number | string, options: { sendMss?: number } = {}): Promise<TunnelDescription> {
    const dict: PlistDict = { MessageType: TUNNEL_START, ...deviceKey(target) };
    if (options.sendMss !== undefined) dict.SendMSS = options.sendMss;
    const timeoutMs = Math.max(this.options.timeoutMs ?? 0, TUNNEL_START_TIMEOUT_MS);
    return parseTunnelDict((await this.tunnelRequest(dict, `TunnelStart ${target}`, timeoutMs)).Tunnel);
  }

  async listTunnels(): Promise<TunnelDescription[]> {
    const list = (await this.tunnelRequest({ MessageType: TUNNEL_LIST }, 'TunnelList')).TunnelList;
    return Array.isArray(list) ? list.map((t) => parseTunnelDict(t)) : [];
  }

  async stopTunnel(target: number | string): Promise<void> {
    await this.tunnelRequest({ MessageType: TUNNEL_STOP, ...deviceKey(target) }, `TunnelStop ${target}`);
  }

  /**
   * tsmuxd: a TCP connection inside the device's tunnel to `port` at
   * `address` (the device's own tunnel address by default); the socket is
   * then a raw pipe, as after connect().
   */
  async tunnelConnect(target: number | string, port: number, address?: string): Promise<net.Socket> {
    const dict: PlistDict = { MessageType: TUNNEL_CONNECT, ...deviceKey(target), Port: port };
    if (address !== undefined) dict.Address = address;
    const what = `TunnelConnect to ${target} ${address ? `[${address}]:` : 'port '}${port}`;
    const channel = await Channel.open({ ...this.options, version: 1 });
    try {
      const r = await channel.reply(channel.sendPlist(dict), Math.max(this.options.timeoutMs ?? 0, TUNNEL_CONNECT_TIMEOUT_MS));
      if (r.kind !== 'result') throw new UsbmuxError(`${what}: unexpected answer`, 'ERR_USBMUX_PROTOCOL');
      if (r.result !== 0) throw resultError(r.result, what, typeof r.dict?.Error === 'string' ? r.dict.Error : undefined);
    } catch (err) {
      channel.close();
      throw err;
    }
    return channel.release();
  }

  /**
   * tsmuxd: a capture of what crosses the daemon (docs/capture.md). The
   * socket then carries pcapng until it is half-closed (end()), when the
   * daemon writes the statistics and closes it. Result 1 (another daemon)
   * throws ERR_CAPTURE_UNSUPPORTED, 13 (another user) ERR_CAPTURE_DENIED.
   */
  async capture(request: CaptureRequest = {}): Promise<net.Socket> {
    const dict: PlistDict = { MessageType: CAPTURE_MESSAGE };
    if (request.udid !== undefined) dict.UDID = request.udid;
    if (request.port !== undefined) dict.Port = request.port;
    if (request.ringBytes !== undefined) dict.RingBytes = request.ringBytes;
    const channel = await Channel.open({ ...this.options, version: 1 });
    try {
      const r = await channel.reply(channel.sendPlist(dict));
      if (r.kind !== 'result') throw new UsbmuxError('capture: unexpected answer', 'ERR_USBMUX_PROTOCOL');
      if (r.result === 1) throw new UsbmuxError('the daemon cannot capture (it answered Result 1: not tsmuxd?)', 'ERR_CAPTURE_UNSUPPORTED', 1);
      if (r.result === 13) {
        throw new UsbmuxError("the daemon refused the capture: only its own user and root may capture (Result 13, EACCES)", 'ERR_CAPTURE_DENIED', 13);
      }
      if (r.result !== 0) throw resultError(r.result, 'capture');
    } catch (err) {
      channel.close();
      throw err;
    }
    return channel.release();
  }

  async listListeners(): Promise<PlistDict[]> {
    const answer = await this.request({ MessageType: 'ListListeners' }, 'ListListeners');
    return Array.isArray(answer.ListenerList) ? (answer.ListenerList as PlistDict[]) : [];
  }
}
