// The simulated phone's RemoteServiceDiscovery endpoint in direct mode
// (reference §3.7): an HTTP/2 + XPC listener on a loopback TCP port that
// runs the device handshake and then sends peer-info (Properties and the
// Services from a provider, each Port a string). Every connection gets a
// fresh UUID.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

import { DeviceConnection } from '../../xpc/device-connection.js';
import { deviceHandshakeRules } from '../../xpc/device-rules.js';
import { buildPeerInfo, REMOTE_XPC_VERSION_FLAGS, type RsdServiceProvider } from '../../xpc/rsd.js';
import { dict, int64, uint64, Uuid, type XpcDictionary } from '../../xpc/values.js';
import type { SimIdentity } from '../identity.js';

export interface RsdServerOptions {
  /** The Properties dictionary (built per connection, so it can carry live values). */
  properties: () => XpcDictionary;
  services: RsdServiceProvider;
  /** Loopback port to listen on (0 or left out: any free port). */
  port?: number;
  host?: string;
  onError?: (err: Error) => void;
}

export interface RsdServer {
  server: Server;
  port: number;
  /** The UUID of the last 64 connections' peer-info, in order (tests check they differ). */
  sessionUuids: string[];
  close(): Promise<void>;
}

/** The Properties a phone's RSD shows, from the sim's identity. */
export function simRsdProperties(identity: SimIdentity, bootSession = Uuid.random()): () => XpcDictionary {
  const chip = BigInt(identity.uniqueChipId);
  return () =>
    dict({
      UniqueDeviceID: identity.udid,
      ProductType: identity.productType,
      OSVersion: identity.productVersion,
      BuildVersion: identity.buildVersion,
      UniqueChipID: int64(chip),
      ChipID: int64(0x8120),
      BoardId: int64(12),
      DeviceClass: identity.deviceClass,
      HWModel: identity.hardwareModel,
      HardwarePlatform: 't8120',
      CPUArchitecture: 'arm64e',
      ProductName: 'iPhone OS',
      HumanReadableProductVersionString: identity.productVersion,
      RemoteXPCVersionFlags: uint64(REMOTE_XPC_VERSION_FLAGS),
      SensitivePropertiesVisible: true,
      SerialNumber: identity.serialNumber,
      EthernetMacAddress: identity.wifiAddress,
      BootSessionUUID: bootSession.toString(),
    });
}

export async function startRsdServer(options: RsdServerOptions): Promise<RsdServer> {
  const sockets = new Set<Socket>();
  const sessionUuids: string[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // Bytes the client sends meanwhile wait in the paused socket.
    void Promise.resolve(options.services()).then(
      (services) => {
        if (socket.destroyed) return;
        const uuid = Uuid.random();
        sessionUuids.push(uuid.toString());
        if (sessionUuids.length > 64) sessionUuids.shift();
        const peerInfo = buildPeerInfo({ uuid, properties: options.properties(), services });
        new DeviceConnection(socket, { rules: deviceHandshakeRules(peerInfo), onError: options.onError });
      },
      (err: Error) => {
        options.onError?.(err);
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    sessionUuids,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
