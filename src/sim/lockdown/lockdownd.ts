// Device port 62078: the simulated phone's lockdownd. QueryType, GetValue
// (the pre-session allow-list; everything inside a session), SetValue of
// UntrustedHostBUID, Pair / ValidatePair / Unpair / ResetPairing with a trust
// dialog ("auto", "prompt" or "deny"), StartService from the device's
// namespace of the service registry (src/registry; each call gets a fresh
// one-connection port, an on-demand service is launched), and StartSession, which turns
// the same connection into a TLS server (reference §1.7), and StopSession,
// which turns it back to plaintext (§1.7.5). Requests on a connection are
// answered one at a time, in order; a bad frame or a failed TLS handshake
// closes that connection only.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

import { isPlistDict, type PlistDict, type PlistValue } from '../../protocol/plist-codec.js';
import { BootstrapError, ServiceRegistry, type BootstrapNamespace } from '../../registry/index.js';
import type { SimIdentity } from '../identity.js';
import { listenService, portTarget, type ServiceAddress } from '../services/listen.js';
import { MAX_FRAME } from '../../lockdown/framing.js';
import { ServicePorts } from '../service-ports.js';
import { checkPairRecord, DevicePairStore } from './pairing.js';
import { serveLockdownConnection, type Connection, type SessionTlsInfo } from './connection.js';
import {
  CORE_DEVICE_PROXY_SINCE,
  LOCKDOWN_TYPE,
  PRE_SESSION_KEYS,
  REQUEST_PAIR_NOTIFICATION,
  UNKNOWN_REQUEST_ERROR,
  versionAtLeast,
} from './values.js';
import type { TrustMode } from '../../protocol/sim-control.js';
import { CORE_DEVICE_PROXY_SERVICE } from '../../protocol/cdtunnel.js';

/** The "Trust this computer?" alert (reference §1.9, item 4). */
export type TrustDialog = 'none' | 'pending' | 'accepted' | 'denied';

/** What StartService needs of a registry entry. */
export interface ServiceTarget {
  /** Where the service listens: a loopback TCP port or a Unix socket path. */
  address: number | string;
  tls?: 'none' | 'full' | 'handshakeOnly';
}

export interface LockdowndOptions {
  maxFrame?: number;
  /** Keep accepted pair records here (one XML plist per HostID) across restarts. */
  stateDir?: string;
  trust?: TrustMode;
  /** "auto" only: the dialog shows (PairingDialogResponsePending) this long before it is accepted. */
  trustDelayMs?: number;
  /** Hands out StartService's one-connection device ports (none mapped if omitted). */
  servicePorts?: ServicePorts;
  /** The device's namespace in the service registry: StartService's table (a private one if omitted). */
  services?: BootstrapNamespace;
}

export const WIRELESS_LOCKDOWN_DOMAIN = 'com.apple.mobile.wireless_lockdown';

export class Lockdownd {
  /** Whether a host has turned Wi-Fi connections on (com.apple.mobile.wireless_lockdown). */
  get wifiEnabled(): boolean {
    return this.identity.domains[WIRELESS_LOCKDOWN_DOMAIN]?.EnableWifiConnections === true;
  }

  /** Set by usbmuxd's preflight (SetValue UntrustedHostBUID) before pairing. */
  untrustedHostBuid?: string;
  /** HostID -> stored pair record. */
  readonly pairRecords: DevicePairStore;
  /** The last session TLS handshake (for tests and logs). */
  lastTls?: SessionTlsInfo;
  trustMode: TrustMode;
  /** "auto" only: the dialog shows this long before it is accepted (0: at once). */
  trustDelayMs: number;
  trustDialog: TrustDialog = 'none';
  /** The services StartService hands out, by name (the device's registry namespace). */
  readonly services: BootstrapNamespace;
  readonly servicePorts: ServicePorts;
  /** Told when a host turns Wi-Fi connections on or off (the sim's network side follows). */
  readonly wifiSettingListeners: Array<(enabled: boolean) => void> = [];
  private readonly serviceTlsHosts: string[] = [];
  /** Called with the name of each notification the phone posts itself. */
  readonly notificationListeners: Array<(name: string) => void> = [];
  /** Called when the host closes the connection of a Pair that the user's Trust tap allowed. */
  readonly trustedPairListeners: Array<(hostId: string) => void> = [];
  private trustTimer?: NodeJS.Timeout;

  constructor(readonly identity: SimIdentity, readonly options: LockdowndOptions = {}) {
    this.pairRecords = new DevicePairStore(options.stateDir);
    this.servicePorts = options.servicePorts ?? new ServicePorts(undefined);
    this.services = options.services ?? new ServiceRegistry().namespace(identity.udid);
    this.trustMode = options.trust ?? 'auto';
    this.trustDelayMs = options.trustDelayMs ?? 0;
  }

  /** The user taps Trust: the next Pair succeeds. */
  trust(): void {
    clearTimeout(this.trustTimer);
    this.trustTimer = undefined;
    this.trustDialog = 'accepted';
    this.notify(REQUEST_PAIR_NOTIFICATION);
  }

  /** The user taps Don't Trust: the next Pair gets UserDeniedPairing. */
  deny(): void {
    clearTimeout(this.trustTimer);
    this.trustTimer = undefined;
    this.trustDialog = 'denied';
  }

  /** Stops a pending trustDelayMs timer and withdraws issued service ports. */
  close(): void {
    this.servicePorts.clear();
    clearTimeout(this.trustTimer);
    this.trustTimer = undefined;
  }

  /** A fresh one-connection device port to a service (what StartService hands out). */
  openServicePort(entry: ServiceTarget, hostId?: string): number {
    if (usesTls(entry) && hostId) this.serviceTlsHosts.push(hostId);
    return this.servicePorts.open(portTarget(entry.address));
  }

  /**
   * The identity for the next service TLS connection: the device key with the
   * DeviceCertificate of the host whose StartService came first (in order).
   */
  serviceTlsIdentity(): { key: string; cert: Buffer } | undefined {
    const hostId = this.serviceTlsHosts.shift();
    const record = hostId === undefined ? undefined : this.pairRecords.get(hostId);
    if (!record) return undefined;
    return {
      key: this.deviceKeyPem(),
      cert: Buffer.from(record.DeviceCertificate),
    };
  }

  /** The device key for a TLS server context (session or service TLS). */
  private deviceKeyPem(): string {
    return this.identity.devicePrivateKey().export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  private notify(name: string): void {
    for (const l of this.notificationListeners) l(name);
  }

  /** Serves one host connection until it closes or sends something malformed. */
  serve(socket: Socket): void {
    serveLockdownConnection(socket, {
      maxFrame: this.options.maxFrame ?? MAX_FRAME,
      handle: (conn, request) => this.handle(conn, request),
      sessionCredentials: (hostId) => {
        const record = this.pairRecords.get(hostId);
        return record && { key: this.deviceKeyPem(), cert: Buffer.from(record.DeviceCertificate), hostId: record.HostID };
      },
      onSecure: (info) => (this.lastTls = info),
      onTrustedPairClosed: (hostId) => {
        for (const l of this.trustedPairListeners) l(hostId);
      },
    });
  }

  /** One request -> its reply (a dict that echoes Request). */
  handle(conn: Connection, req: PlistDict): PlistDict {
    const verb = req.Request as string;
    const fail = (error: string, extra: PlistDict = {}): PlistDict => ({ ...extra, Request: verb, Error: error });
    switch (verb) {
      case 'QueryType':
        return { Request: verb, Type: LOCKDOWN_TYPE };
      case 'GetValue':
        return this.getValue(conn, req);
      case 'SetValue':
        return this.setValue(conn, req);
      case 'RemoveValue':
        return conn.session ? fail('RemoveProhibited') : fail('SessionInactive');
      case 'Pair':
        return this.pair(conn, req);
      case 'ValidatePair': {
        const record = req.PairRecord;
        const hostId = isPlistDict(record) ? record.HostID : undefined;
        if (typeof hostId !== 'string') return fail('MissingHostID');
        return this.pairRecords.has(hostId) ? { Request: verb } : fail('InvalidHostID');
      }
      case 'Unpair': {
        const record = req.PairRecord;
        const hostId = isPlistDict(record) ? record.HostID : typeof req.HostID === 'string' ? req.HostID : undefined;
        if (typeof hostId !== 'string' || hostId === '') return fail('MissingHostID');
        if (!this.pairRecords.delete(hostId)) return fail('InvalidHostID');
        return { Request: verb };
      }
      case 'ResetPairing':
        this.pairRecords.clear();
        return { Request: verb };
      case 'StartSession': {
        if (typeof req.HostID !== 'string' || req.HostID === '') return fail('MissingHostID');
        if (!this.pairRecords.has(req.HostID)) return fail('InvalidHostID');
        if (conn.session) return fail('SessionActive');
        conn.session = { id: randomUUID().toUpperCase(), hostId: req.HostID };
        conn.after = 'startTls';
        return { Request: verb, SessionID: conn.session.id, EnableSessionSSL: true };
      }
      case 'StopSession':
        if (typeof req.SessionID !== 'string') return fail('MissingSessionID');
        if (!conn.session || conn.session.id !== req.SessionID) return fail('InvalidSessionID');
        conn.after = 'stopTls';
        return { Request: verb, Result: 'Success' };
      case 'StartService': {
        const name = typeof req.Service === 'string' ? req.Service : undefined;
        const known = name === undefined ? undefined : this.services.find(name);
        if (!conn.session && !known?.withoutSession) return fail('SessionInactive');
        if (name === undefined) return fail('MissingService');
        if (name === CORE_DEVICE_PROXY_SERVICE) return this.startCoreDeviceProxy(conn, name);
        let entry;
        try {
          // Launches an on-demand service; the host's connection waits for it.
          entry = this.services.lookUp(name);
        } catch (err) {
          if (err instanceof BootstrapError) return fail('InvalidService', { Service: name });
          throw err;
        }
        const port = this.openServicePort(entry, conn.session?.hostId);
        return { Request: verb, Service: name, Port: port, ...(usesTls(entry) ? { EnableServiceSSL: true } : {}) };
      }
      case 'Goodbye':
        conn.after = 'close';
        return { Request: verb };
      default:
        return fail(UNKNOWN_REQUEST_ERROR);
    }
  }

  /**
   * CoreDeviceProxy (iOS 17.4+): a one-connection port that the device-role
   * mux serves natively, TLS as the server with the asking host's
   * DeviceCertificate and the device key, then the CDTunnel handshake, which
   * the engine hands to the sim's tunnels (src/sim/tunnel).
   */
  private startCoreDeviceProxy(conn: Connection, name: string): PlistDict {
    const fail = (error: string): PlistDict => ({ Request: 'StartService', Service: name, Error: error });
    if (!versionAtLeast(this.identity.productVersion, CORE_DEVICE_PROXY_SINCE)) return fail('InvalidService');
    const record = conn.session && this.pairRecords.get(conn.session.hostId);
    // Unpaired in the middle of its session.
    if (!record) return fail('InvalidHostID');
    const port = this.servicePorts.open({
      tunnel: { certPem: Buffer.from(record.DeviceCertificate).toString('utf8'), keyPem: this.deviceKeyPem() },
    });
    return { Request: 'StartService', Service: name, Port: port, EnableServiceSSL: true };
  }

  private pair(conn: Connection, req: PlistDict): PlistDict {
    const check = checkPairRecord(req.PairRecord, this.identity.devicePublicKeyPem());
    if (!check.ok) return { Request: 'Pair', Error: check.error };
    const fail = (error: string): PlistDict => ({ Request: 'Pair', Error: error });
    if (this.trustMode === 'deny') return fail('UserDeniedPairing');
    const delay = this.trustDelayMs;
    if (this.trustMode === 'prompt' || delay > 0) {
      switch (this.trustDialog) {
        case 'none':
          this.trustDialog = 'pending';
          if (this.trustMode === 'auto') {
            this.trustTimer = setTimeout(() => this.trust(), delay);
            this.trustTimer.unref?.();
          }
          return fail('PairingDialogResponsePending');
        case 'pending':
          return fail('PairingDialogResponsePending');
        case 'denied':
          this.trustDialog = 'none';
          return fail('UserDeniedPairing');
        case 'accepted':
          // One tap of Trust pairs one host.
          this.trustDialog = 'none';
          conn.trustedPair = check.record.HostID;
          break;
      }
    }
    const escrowBag = randomBytes(32);
    this.pairRecords.set({ ...check.record, EscrowBag: escrowBag });
    return { Request: 'Pair', EscrowBag: escrowBag };
  }

  private table(domain: string | undefined): PlistDict | undefined {
    return domain === undefined ? this.identity.defaultDomain() : this.identity.domains[domain];
  }

  private getValue(conn: Connection, req: PlistDict): PlistDict {
    const domain = typeof req.Domain === 'string' ? req.Domain : undefined;
    const key = typeof req.Key === 'string' ? req.Key : undefined;
    const echo: PlistDict = {};
    if (domain !== undefined) echo.Domain = domain;
    if (key !== undefined) echo.Key = key;
    const fail = (error: string): PlistDict => ({ ...echo, Request: 'GetValue', Error: error });
    const ok = (value: PlistValue): PlistDict => ({ ...echo, Request: 'GetValue', Value: value });

    const table = this.table(domain);
    if (!table) return fail('MissingValue');
    if (key === undefined) {
      if (conn.session) return ok(table);
      if (domain !== undefined) return fail('GetProhibited');
      const subset: PlistDict = {};
      for (const [k, v] of Object.entries(table)) if (PRE_SESSION_KEYS.has(k)) subset[k] = v;
      return ok(subset);
    }
    if (!(key in table)) return fail('MissingValue');
    if (!conn.session && (domain !== undefined || !PRE_SESSION_KEYS.has(key))) return fail('GetProhibited');
    return ok(table[key]!);
  }

  private setValue(conn: Connection, req: PlistDict): PlistDict {
    const key = typeof req.Key === 'string' ? req.Key : undefined;
    const echo: PlistDict = {};
    if (typeof req.Domain === 'string') echo.Domain = req.Domain;
    if (key !== undefined) echo.Key = key;
    const fail = (error: string): PlistDict => ({ ...echo, Request: 'SetValue', Error: error });
    if (key === undefined) return fail('MissingKey');
    if (req.Value === undefined) return fail('MissingValue');
    // usbmuxd's preflight sets this on an unpaired phone, without a session.
    if (key === 'UntrustedHostBUID' && echo.Domain === undefined) {
      if (typeof req.Value !== 'string') return fail('SetProhibited');
      this.untrustedHostBuid = req.Value;
      return { ...echo, Request: 'SetValue' };
    }
    if (!conn.session) return fail('SessionInactive');
    // `tsmuxd wifi enable|disable` (and Finder's "Show this iPhone when on
    // Wi-Fi"): the one setting a host may change in this domain.
    if (echo.Domain === WIRELESS_LOCKDOWN_DOMAIN && key === 'EnableWifiConnections') {
      if (typeof req.Value !== 'boolean') return fail('SetProhibited');
      this.identity.domains[WIRELESS_LOCKDOWN_DOMAIN]!.EnableWifiConnections = req.Value;
      for (const listener of this.wifiSettingListeners) listener(req.Value);
      return { ...echo, Request: 'SetValue' };
    }
    return fail('SetProhibited');
  }
}

function usesTls(entry: ServiceTarget): boolean {
  return entry.tls === 'full' || entry.tls === 'handshakeOnly';
}

export async function startLockdownd(
  identity: SimIdentity,
  at?: ServiceAddress,
  options: LockdowndOptions = {},
): Promise<{ server: Server; address: string | number; lockdownd: Lockdownd }> {
  const lockdownd = new Lockdownd(identity, options);
  const server = createServer((socket) => lockdownd.serve(socket));
  return { server, address: await listenService(server, at), lockdownd };
}
