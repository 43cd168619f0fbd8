// The six hostile peers of issue 11, as attacks the benchmark runs in a
// process of their own while a victim measures its throughput. Each one
// starts, reports itself ready once the attack is in full swing, and on stop
// says what it did. See docs/hostile-peers.md for the expected behaviour.
import { once } from 'node:events';
import net from 'node:net';

import { UsbmuxClient } from '../../src/client/index.js';
import { encodeHeader, encodeMessage, MessageType, ProtocolVersion } from '../../src/protocol/usbmux.js';
import { RawPhone, TH_ACK, TH_RST, TH_SYN, type Tcp } from './raw-phone.js';

export const ATTACKS = ['control-rst-flood', 'zero-window', 'past-window', 'half-open', 'stuck-reader', 'garbage-listen'] as const;
export type AttackName = (typeof ATTACKS)[number];

export interface AttackOptions {
  socket: string;
  cable: string;
  /** The healthy phone the stuck reader pushes its bytes into. */
  victimUdid: string;
  /** Half-open sockets to hold (the fd limit permitting). */
  sockets: number;
}

export interface Attack {
  /** Resolves once the attack is running at full strength. */
  start(): Promise<void>;
  stop(): Promise<Record<string, number>>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const HOSTILE_SERIAL = '00008101000AB0BAB0BAB0BA';

const header = (length: number, version: number, message: number, tag: number): Buffer =>
  encodeHeader({ length, version, message, tag });
const LISTEN = encodeMessage(ProtocolVersion.Binary, MessageType.Listen, 1);

async function openSocket(path: string): Promise<net.Socket> {
  for (let attempt = 0; ; attempt++) {
    const s = net.connect(path);
    try {
      await Promise.race([once(s, 'connect'), once(s, 'error').then(([e]) => Promise.reject(e as Error))]);
      s.on('error', () => {});
      return s;
    } catch (err) {
      s.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'EAGAIN' && code !== 'ECONNREFUSED') || attempt > 200) throw err;
      await sleep(5 + attempt);
    }
  }
}

/** Runs `body` in `n` loops until stopped; counts the rounds. */
function loops(n: number, body: () => Promise<void>): { stop(): Promise<number> } {
  let running = true;
  let rounds = 0;
  const workers = Array.from({ length: n }, async () => {
    while (running) {
      await body().catch(() => undefined);
      rounds++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return rounds;
    },
  };
}

/** CONTROL log lines and RSTs for connections that do not exist, as fast as the cable takes them. */
function controlRstFlood(o: AttackOptions): Attack {
  let phone: RawPhone;
  let flood: { stop(): Promise<number> };
  let packets = 0;
  return {
    async start() {
      phone = await RawPhone.plug(o.cable, HOSTILE_SERIAL);
      const line = Buffer.concat([Buffer.from([7]), Buffer.from('AppleUSBDeviceMux::flood a log line nobody wants\n')]);
      flood = loops(1, async () => {
        const batch: Buffer[] = [];
        for (let i = 0; i < 100; i++) {
          batch.push(phone.packet(1, undefined, line));
          batch.push(phone.packet(6, { sport: 1 + ((packets + i) % 60000), dport: 1 + (i % 500), seq: packets, ack: 0, flags: TH_RST, window: 0 }));
        }
        phone.sendBatch(batch);
        packets += batch.length;
        while (phone.cable.recv(0)) {
          // nothing is expected back; drop whatever comes
        }
        await new Promise((r) => setImmediate(r));
      });
      await sleep(200);
    },
    async stop() {
      const rounds = await flood.stop();
      phone.close();
      return { packets, transfers: rounds };
    },
  };
}

/**
 * The phone answers every SYN with `onSyn` (and sees every other packet in
 * `onPacket`) while usbmuxd clients connect to it: the raw phone and its
 * clients live in this one process.
 */
async function respondingPhone(cable: string, onSyn: (syn: Tcp, phone: RawPhone) => Tcp | null, onPacket?: (tcp: Tcp, payload: Buffer) => void) {
  const phone = await RawPhone.plug(cable, HOSTILE_SERIAL);
  let running = true;
  const loop = (async () => {
    while (running) {
      const p = await phone.next(50);
      if (!p?.tcp) continue;
      const tcp = { ...p.tcp, window: p.tcp.window << 8 };
      if (tcp.flags === TH_SYN) {
        const reply = onSyn(tcp, phone);
        if (reply) phone.sendTcp(reply);
      } else {
        onPacket?.(tcp, p.payload);
      }
    }
  })();
  return {
    phone,
    async stop() {
      running = false;
      await loop;
      phone.close();
    },
  };
}

const synAck = (syn: Tcp, window: number): Tcp => ({ sport: syn.dport, dport: syn.sport, seq: 0, ack: 1, flags: TH_SYN | TH_ACK, window });

/** Connections whose SYN|ACK says window 0, each with 64 KiB waiting behind it, held open. */
function zeroWindow(o: AttackOptions): Attack {
  const held: net.Socket[] = [];
  let responder: Awaited<ReturnType<typeof respondingPhone>>;
  return {
    async start() {
      responder = await respondingPhone(o.cable, (syn) => synAck(syn, 0));
      const client = new UsbmuxClient({ address: { kind: 'unix', path: o.socket } });
      await waitListed(client, responder.phone.udid);
      for (let i = 0; i < 64; i++) {
        const s = await client.connect(responder.phone.udid, 5000 + i);
        s.on('error', () => {});
        s.write(Buffer.alloc(64 * 1024, 1));
        held.push(s);
      }
    },
    async stop() {
      for (const s of held) s.destroy();
      await responder.stop();
      return { connections: held.length };
    },
  };
}

async function waitListed(client: UsbmuxClient, udid: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await client.listDevices()).some((d) => d.serialNumber === udid)) return;
    await sleep(50);
  }
  throw new Error(`the hostile phone ${udid} was never listed`);
}

/** Connect, then the phone pushes 1 MiB at once, ignoring the window; the daemon resets it; again. */
function pastWindow(o: AttackOptions): Attack {
  let responder: Awaited<ReturnType<typeof respondingPhone>>;
  let rounds: { stop(): Promise<number> };
  let resets = 0;
  const blob = Buffer.alloc(48 * 1024, 0x61);
  return {
    async start() {
      responder = await respondingPhone(
        o.cable,
        (syn, phone) => {
          phone.sendTcp(synAck(syn, 256 * 1024));
          for (let sent = 0; sent < 1 << 20; sent += blob.length) {
            phone.sendTcp({ sport: syn.dport, dport: syn.sport, seq: 1 + sent, ack: 1, flags: TH_ACK, window: 256 * 1024 }, blob);
          }
          return null;
        },
        (tcp) => {
          if (tcp.flags & TH_RST) resets++;
        },
      );
      const client = new UsbmuxClient({ address: { kind: 'unix', path: o.socket } });
      await waitListed(client, responder.phone.udid);
      rounds = loops(2, async () => {
        const s = await client.connect(responder.phone.udid, 6000);
        s.on('error', () => {});
        s.resume();
        await once(s, 'close');
      });
      await sleep(200);
    },
    async stop() {
      const n = await rounds.stop();
      await responder.stop();
      return { rounds: n, resets };
    },
  };
}

/** Sockets holding half a header, plus a stream of clients that half-close after a request. */
function halfOpen(o: AttackOptions): Attack {
  const held: net.Socket[] = [];
  let churn: { stop(): Promise<number> };
  return {
    async start() {
      const queue = Array.from({ length: o.sockets }, (_, i) => i);
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (queue.pop() !== undefined) {
            const s = await openSocket(o.socket);
            s.write(LISTEN.subarray(0, 10));
            held.push(s);
          }
        }),
      );
      churn = loops(8, async () => {
        const s = await openSocket(o.socket);
        s.end(Math.random() < 0.5 ? LISTEN : LISTEN.subarray(0, 7));
        s.resume();
        await once(s, 'close');
      });
    },
    async stop() {
      const halfClosed = await churn.stop();
      for (const s of held) s.destroy();
      return { held: held.length, halfClosed };
    },
  };
}

/** A client that pushes 1 GiB into the healthy phone's echo service and never reads the echo. */
function stuckReader(o: AttackOptions): Attack {
  let socket: net.Socket;
  let pushed = 0;
  let writing: Promise<void>;
  let stopped = false;
  return {
    async start() {
      const client = new UsbmuxClient({ address: { kind: 'unix', path: o.socket } });
      socket = await client.connect(o.victimUdid, 7);
      socket.pause();
      socket.on('error', () => {});
      const chunk = Buffer.alloc(1 << 20, 0x42);
      let stalled!: () => void;
      const stall = new Promise<void>((r) => (stalled = r));
      writing = (async () => {
        for (let offered = 0; offered < 1 << 30 && !stopped; offered += chunk.length) {
          if (socket.write(chunk)) continue;
          const drained = await Promise.race([once(socket, 'drain').then(() => true), sleep(1000).then(() => false)]);
          pushed = socket.bytesWritten - socket.writableLength;
          if (!drained) stalled();
          if (!drained) await Promise.race([once(socket, 'drain'), once(socket, 'close')]).catch(() => undefined);
        }
        stalled();
      })();
      await stall;
    },
    async stop() {
      stopped = true;
      pushed = socket.bytesWritten - socket.writableLength;
      socket.destroy();
      await writing.catch(() => undefined);
      return { pushedBytes: pushed };
    },
  };
}

/** Listen, then garbage (binary noise, a broken plist, a bad version), and again once closed. */
function garbageListen(o: AttackOptions): Attack {
  let rounds: { stop(): Promise<number> };
  const brokenPlist = Buffer.from([0x3c, 0x70, 0x6c, 0x69, 0x73, 0x74, 0x3e, 0x00, 0xff, 0xfe]);
  const garbage = [
    Buffer.from('89abcdef0123456789abcdef0123456789abcdef', 'hex'),
    Buffer.concat([header(16 + brokenPlist.length, 1, 8, 2), brokenPlist]),
    header(16, 7, 8, 3),
  ];
  const open = new Set<net.Socket>();
  let n = 0;
  return {
    async start() {
      rounds = loops(8, async () => {
        const s = await openSocket(o.socket);
        open.add(s);
        s.write(LISTEN);
        s.resume();
        await sleep(1);
        s.write(garbage[n++ % garbage.length]);
        await once(s, 'close');
        open.delete(s);
      });
      await sleep(200);
    },
    async stop() {
      const stopping = rounds.stop();
      // A client the daemon failed to close would hang its loop: say so.
      await Promise.race([stopping, sleep(5000)]);
      const leftOpen = open.size;
      for (const s of open) s.destroy();
      return { clients: await stopping, leftOpen };
    },
  };
}

export function makeAttack(name: AttackName, o: AttackOptions): Attack {
  switch (name) {
    case 'control-rst-flood': return controlRstFlood(o);
    case 'zero-window': return zeroWindow(o);
    case 'past-window': return pastWindow(o);
    case 'half-open': return halfOpen(o);
    case 'stuck-reader': return stuckReader(o);
    case 'garbage-listen': return garbageListen(o);
  }
}
