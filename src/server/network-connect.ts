// A Connect to a phone on the network (docs/wifi.md): the daemon opens TCP
// to the phone's address and the port asked for, answers the client, and
// then both sockets go to the data plane, which joins them
// (native/engine/socket_splice.h); their bytes never enter JS.
//
// The phone's socket is paused before it connects, so nothing it says is
// read here: it waits in the kernel and reaches native code with the fd.
import type { Socket } from 'node:net';

import { connectPaused } from '../util/paused-connect.js';

import type { DeviceRecord } from '../devices/device-table.js';
import type { MuxEngine } from '../native/mux-engine.js';
import { Result } from '../protocol/usbmux.js';
import type { ConnectPlan } from './connect-flow.js';
import { resultMessage } from './replies.js';

/** The socket exists only between open() and the handover; this id stands for it. */
const NOT_YET_SPLICED = 0;

export function networkConnectPlan(
  engine: MuxEngine,
  device: DeviceRecord,
  port: number,
  client: Socket,
  version: number,
  timeoutMs: number,
): ConnectPlan {
  const location = device.network!;
  let phone: Socket | undefined;
  return {
    what: `connect to network device ${device.deviceId} (${location.endpoint.address}) port ${port}`,
    open: async () => {
      const { address, scopeId } = location.endpoint;
      const host = scopeId && address.toLowerCase().startsWith('fe80') ? `${address}%${scopeId}` : address;
      phone = await connectPaused(host, port, timeoutMs);
      return NOT_YET_SPLICED;
    },
    adopt: (_conn, pipelined) => {
      const p = phone!;
      phone = undefined;
      return engine.spliceSockets(client, pipelined.length ? pipelined : undefined, p);
    },
    abandon: () => {
      phone?.destroy();
      phone = undefined;
    },
    // A phone that refuses or does not answer is a refused port, as on USB.
    refused: () => (tag) => resultMessage(version, tag, Result.CONNREFUSED),
  };
}
