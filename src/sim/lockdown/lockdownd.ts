// Device port 62078: the simulated phone's lockdownd, first slice. Plaintext
// only: QueryType, GetValue (the pre-session allow-list), SetValue of
// UntrustedHostBUID, and the session/pairing verbs answered with the errors a
// real phone gives a host it has never paired with. Requests on a connection
// are answered one at a time, in order; a bad frame closes that connection.
import { createServer, type Server, type Socket } from 'node:net';

import { isPlistDict, type PlistDict, type PlistValue } from '../../pairing/plist-codec.js';
import type { SimIdentity } from '../identity.js';
import { listenService, type ServiceAddress } from '../services/listen.js';
import { decodeBody, encodeFrame, FrameReader, MAX_FRAME } from './framing.js';

export const LOCKDOWN_TYPE = 'com.apple.mobile.lockdown';

/** Default-domain keys a phone gives out before a session (reference §1.9, item 3). */
export const PRE_SESSION_KEYS: ReadonlySet<string> = new Set([
  'ProductVersion',
  'ProductType',
  'ProductName',
  'BuildVersion',
  'DeviceClass',
  'DeviceName',
  'UniqueDeviceID',
  'UniqueChipID',
  'DevicePublicKey',
  'WiFiAddress',
  'HardwareModel',
  'CPUArchitecture',
  'ProtocolVersion',
  'ActivationState',
  'TimeIntervalSince1970',
  'TimeZone',
  'TimeZoneOffsetFromUTC',
]);

/**
 * Answer to a verb this slice does not know. Not from the reference (it lists
 * no such error); a placeholder until checked against a real device.
 */
export const UNKNOWN_REQUEST_ERROR = 'InvalidRequest';

interface Session {
  id: string;
  hostId: string;
}

interface Connection {
  session?: Session;
}

export interface LockdowndOptions {
  maxFrame?: number;
}

export class Lockdownd {
  /** Set by usbmuxd's preflight (SetValue UntrustedHostBUID) before pairing. */
  untrustedHostBuid?: string;
  /** HostID -> stored pair record. Empty until Pair is implemented. */
  readonly pairRecords = new Map<string, PlistDict>();

  constructor(readonly identity: SimIdentity, readonly options: LockdowndOptions = {}) {}

  /** Serves one host connection until it closes or sends something malformed. */
  serve(socket: Socket): void {
    const reader = new FrameReader(this.options.maxFrame ?? MAX_FRAME);
    const conn: Connection = {};
    let finished = false;
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (finished) return;
      try {
        for (const body of reader.push(chunk)) {
          const request = decodeBody(body);
          if (!isPlistDict(request) || typeof request.Request !== 'string') {
            throw new Error('lockdown request is not a dict with a Request string');
          }
          const reply = this.handle(conn, request);
          socket.write(encodeFrame(reply));
          if (request.Request === 'Goodbye') {
            finished = true;
            socket.end();
            return;
          }
        }
      } catch {
        finished = true;
        socket.destroy();
      }
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
      case 'StartSession': {
        if (typeof req.HostID !== 'string' || req.HostID === '') return fail('MissingHostID');
        if (!this.pairRecords.has(req.HostID)) return fail('InvalidHostID');
        // Sessions (and the TLS that follows) come with Pair, in a later slice.
        return fail('InvalidHostID');
      }
      case 'StopSession':
        if (typeof req.SessionID !== 'string') return fail('MissingSessionID');
        if (!conn.session || conn.session.id !== req.SessionID) return fail('InvalidSessionID');
        conn.session = undefined;
        return { Request: verb, Result: 'Success' };
      case 'ValidatePair': {
        const record = req.PairRecord;
        const hostId = isPlistDict(record) ? record.HostID : undefined;
        if (typeof hostId !== 'string') return fail('MissingHostID');
        return this.pairRecords.has(hostId) ? { Request: verb } : fail('InvalidHostID');
      }
      case 'StartService':
        if (!conn.session) return fail('SessionInactive');
        if (typeof req.Service !== 'string') return fail('MissingService');
        return fail('InvalidService', { Service: req.Service });
      case 'Goodbye':
        return { Request: verb };
      default:
        return fail(UNKNOWN_REQUEST_ERROR);
    }
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
    return fail('SetProhibited');
  }
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
