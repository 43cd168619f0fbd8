// Preflight (reference usbmuxd §6): before a phone is listed, make sure this
// host can talk to it. Each device runs on its own, asynchronously; one slow
// or hostile phone never holds up another.
//
//   QueryType → not lockdown (restore mode...): visible.
//   A pair record → StartSession (TLS) and StopSession: paired, visible.
//     TLS failure: the record is stale, delete it and start over (once).
//   No record (or InvalidHostID) → SetValue UntrustedHostBUID, Pair:
//     accepted → save the record, broadcast Paired, visible;
//     PairingDialogResponsePending → visible now, observe request_pair on
//       insecure_notification_proxy and ask again on the notification or
//       every retry interval, until trust, denial or unplug. (Debian's
//       usbmuxd gives up here: its issue #281.)
//     UserDeniedPairing → visible, unpaired; the user can pair later.
//   PasswordProtected → visible, retried until the phone is unlocked.
//
// A phone this host has paired with needs only the session, so what pairing
// alone uses (Pair, the certificates, the notification proxy) is imported
// when a phone needs it, and its RSA keys are made once its public key is
// in, as usbmuxd makes them. Not sooner: the lab's sim makes its own key on that request,
// and ours competing with it for the emulated CPU made the request time out.
import type { Socket } from 'node:net';

import type { DeviceRecord, DeviceTable } from '../devices/device-table.js';
import { openLoopbackClient } from '../native/loopback-client.js';
import type { MuxEngine } from '../native/mux-engine.js';
import type { Logger } from '../util/log.js';
import { LockdownClient, LOCKDOWN_PORT } from '../lockdown/client.js';
import { LockdownError, LOCKDOWN_TLS } from '../lockdown/errors.js';
import { hostCredentials } from '../pairing/certificates.js';
import { toXml, type PlistDict } from '../protocol/plist-codec.js';
import type { PairRecordStore } from '../pairing/store.js';
import type { NotificationObserver } from './notifications.js';

export const LOCKDOWN_TYPE = 'com.apple.mobile.lockdown';
const INSECURE_NOTIFICATION_PROXY = 'com.apple.mobile.insecure_notification_proxy';

export interface PreflightOptions {
  engine: MuxEngine;
  devices: DeviceTable;
  store: PairRecordStore;
  log: Logger;
  /** Where the in-process client sockets are made. */
  socketDir: string;
  /** How often Pair is asked again while the Trust dialog shows (default 2 s). */
  retryMs?: number;
  lockdownTimeoutMs?: number;
  /** A phone is paired with this host and listed (the automatic tunnels start from here). */
  onPaired?: (d: DeviceRecord) => void;
}

export type PreflightResult = 'paired' | 'not-lockdown' | 'denied' | 'gone' | 'failed';

export class Preflight {
  private readonly running = new Map<DeviceRecord, Promise<PreflightResult>>();

  constructor(private readonly o: PreflightOptions) {
    o.devices.onReady = (d) => this.start(d);
  }

  /** The preflight of one device (for tests and logs). */
  result(d: DeviceRecord): Promise<PreflightResult> | undefined {
    return this.running.get(d);
  }

  private start(d: DeviceRecord): void {
    const run = this.run(d)
      .catch((err: unknown) => {
        if (!this.o.devices.has(d)) return 'gone' as const;
        this.o.log.warning(`preflight of ${d.serialNumber} failed: ${(err as Error).message}`, { code: (err as LockdownError).code });
        return 'failed' as const;
      })
      .then((r) => {
        // Whatever happened, a phone that is still there is listed.
        if (this.o.devices.has(d)) this.o.devices.show(d.handle);
        this.running.delete(d);
        if (r === 'paired' && this.o.devices.has(d)) this.o.onPaired?.(d);
        return r;
      });
    this.running.set(d, run);
  }

  private async connect(d: DeviceRecord, port: number): Promise<Socket> {
    return (await openLoopbackClient(this.o.engine, d.handle, port, this.o.socketDir)).socket;
  }

  private async lockdown(d: DeviceRecord): Promise<LockdownClient> {
    return new LockdownClient(await this.connect(d, LOCKDOWN_PORT), { label: 'tsmuxd', timeoutMs: this.o.lockdownTimeoutMs });
  }

  private async run(d: DeviceRecord, retried = false): Promise<PreflightResult> {
    const { log, store, devices } = this.o;
    const udid = d.serialNumber;
    const lockdown = await this.lockdown(d);
    try {
      const type = await lockdown.queryType();
      if (type !== LOCKDOWN_TYPE) {
        log.info(`${udid}: ${type}, not lockdown; no preflight`);
        return 'not-lockdown';
      }
      const buid = await store.systemBUID();
      let record: PlistDict | undefined;
      try {
        record = await store.readRecord(udid);
      } catch {
        record = undefined;
      }
      if (record && typeof record.HostID === 'string') {
        try {
          await lockdown.startSession(record.HostID, buid, hostCredentials(record));
          await lockdown.stopSession();
          log.info(`${udid}: paired (session with the stored record)`);
          return 'paired';
        } catch (err) {
          if (!(err instanceof LockdownError)) throw err;
          if (err.code === LOCKDOWN_TLS && !retried) {
            log.notice(`${udid}: session TLS failed with the stored record; deleting it and starting over`);
            await store.delete(udid).catch(() => undefined);
            lockdown.destroy();
            return this.run(d, true);
          }
          if (err.code !== 'InvalidHostID') throw err;
          log.notice(`${udid}: the phone does not know our HostID; pairing again`);
        }
      }
      if (!devices.has(d)) return 'gone';
      return await this.pairLoop(d, lockdown, buid);
    } finally {
      lockdown.destroy();
    }
  }

  private async pairLoop(d: DeviceRecord, first: LockdownClient, buid: string): Promise<PreflightResult> {
    const { log, store, devices } = this.o;
    const udid = d.serialNumber;
    const { pairDevice, preparePairRecord } = await import('../pairing/pair.js');
    const { REQUEST_HOST_BUID } = await import('./notifications.js');
    // A connection the session attempt left closed is replaced here, and
    // whatever this loop opens it also closes (the caller closes `first`).
    let lockdown = first.closed ? await this.lockdown(d) : first;
    let observer: NotificationObserver | undefined;
    let wake: (() => void) | undefined;
    const started = Date.now();
    try {
      await lockdown.setValue('UntrustedHostBUID', buid);
      const pending = await preparePairRecord(lockdown, buid);
      for (let attempt = 1; ; attempt++) {
        if (!devices.has(d)) return 'gone';
        if (lockdown.closed) lockdown = await this.lockdown(d);
        try {
          const record = await pairDevice(lockdown, pending);
          await store.save(udid, Buffer.from(toXml(record), 'utf8'));
          log.notice(`${udid}: paired after ${attempt} attempt(s), ${Date.now() - started} ms`);
          devices.show(d.handle);
          devices.paired(d.deviceId);
          return 'paired';
        } catch (err) {
          if (!(err instanceof LockdownError)) throw err;
          if (err.code === 'UserDeniedPairing') {
            log.notice(`${udid}: the user denied the trust dialog`);
            return 'denied';
          }
          if (err.code !== 'PairingDialogResponsePending' && err.code !== 'PasswordProtected') throw err;
          if (attempt === 1) {
            log.notice(err.code === 'PasswordProtected'
              ? `${udid}: locked with a passcode; unlock it to pair`
              : `${udid}: waiting for the user to trust this computer`);
          }
        }
        // Listed while the dialog shows, so tools can say "please trust".
        devices.show(d.handle);
        if (!observer) observer = await this.observe(d, lockdown, (name) => {
          if (name === REQUEST_HOST_BUID) void lockdown.setValue('UntrustedHostBUID', buid).catch(() => undefined);
          wake?.();
        });
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            devices.off('detached', onDetached);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, this.o.retryMs ?? 2000);
          const onDetached = (gone: DeviceRecord) => {
            if (gone === d) done();
          };
          devices.on('detached', onDetached);
          wake = done;
        });
      }
    } finally {
      observer?.close();
      if (lockdown !== first) lockdown.destroy();
    }
  }

  /** insecure_notification_proxy, observing request_pair; undefined if the phone has none. */
  private async observe(d: DeviceRecord, lockdown: LockdownClient, on: (name: string) => void): Promise<NotificationObserver | undefined> {
    try {
      const { NotificationObserver, REQUEST_HOST_BUID, REQUEST_PAIR } = await import('./notifications.js');
      const { port } = await lockdown.startService(INSECURE_NOTIFICATION_PROXY);
      const observer = new NotificationObserver(await this.connect(d, port));
      observer.on('notification', on);
      observer.observe(REQUEST_PAIR);
      observer.observe(REQUEST_HOST_BUID);
      return observer;
    } catch (err) {
      this.o.log.info(`${d.serialNumber}: no notification proxy (${(err as Error).message}); polling`);
      return undefined;
    }
  }
}
