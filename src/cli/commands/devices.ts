// `tsmuxd devices`: the daemon's device list, or with --watch its attach,
// detach and pair events as they happen (Listen), one line each. Works
// against any usbmuxd, not only tsmuxd.
import type { UsbmuxDevice, UsbmuxEvent } from '../../client/usbmux-client.js';
import {
  clientFor,
  COMMON_HELP,
  COMMON_OPTIONS,
  daemonAddress,
  hex,
  jsonLine,
  parseCommandArgs,
  table,
  untilSignal,
} from './common.js';

const HELP = `usage: tsmuxd devices [--watch] [--json] [--socket ADDR]

Lists the devices the daemon shows its clients: DeviceID, UDID, connection
type, USB product id and location. With --watch, prints the current devices
and then each attach, detach and pair event as it happens, until interrupted.

  -w, --watch         stream events (JSON lines with --json)
${COMMON_HELP}`;

export interface DeviceLine {
  deviceId: number;
  udid: string;
  connectionType: string;
  productId: number;
  locationId: number;
  connectionSpeed?: number;
}

function describe(d: UsbmuxDevice): DeviceLine {
  const speed = d.properties.ConnectionSpeed;
  return {
    deviceId: d.deviceId,
    udid: d.serialNumber,
    connectionType: typeof d.properties.ConnectionType === 'string' ? d.properties.ConnectionType : 'USB',
    productId: d.productId,
    locationId: d.locationId,
    ...(typeof speed === 'number' ? { connectionSpeed: speed } : {}),
  };
}

function textRow(d: DeviceLine): string[] {
  return [String(d.deviceId), d.udid, d.connectionType, hex(d.productId), hex(d.locationId, 8)];
}

async function list(address: ReturnType<typeof daemonAddress>, json: boolean): Promise<number> {
  const devices = (await clientFor(address).listDevices()).map(describe);
  if (json) {
    process.stdout.write(`${JSON.stringify(devices)}\n`);
  } else if (devices.length === 0) {
    process.stdout.write('no devices\n');
  } else {
    const lines = table(['DeviceID', 'UDID', 'Type', 'ProductID', 'Location'], devices.map(textRow));
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return 0;
}

async function watch(address: ReturnType<typeof daemonAddress>, json: boolean): Promise<number> {
  const listener = await clientFor(address).listen();
  const known = new Map<number, DeviceLine>();
  const signal = untilSignal();
  void signal.done.then(() => listener.close());
  const print = (event: UsbmuxEvent['type'], d: Partial<DeviceLine> & { deviceId: number }) => {
    const time = new Date().toISOString();
    if (json) {
      jsonLine({ time, event, ...d });
      return;
    }
    const detail =
      event === 'attached'
        ? ` ${d.udid} ${d.connectionType} product ${hex(d.productId ?? 0)} location ${hex(d.locationId ?? 0, 8)}`
        : d.udid
          ? ` ${d.udid}`
          : '';
    process.stdout.write(`${time} ${event} ${d.deviceId}${detail}\n`);
  };
  try {
    for await (const ev of listener) {
      if (ev.type === 'attached') {
        const d = describe(ev.device);
        known.set(d.deviceId, d);
        print('attached', d);
      } else {
        // Detached and Paired carry only the DeviceID; name the UDID we saw attach.
        const udid = known.get(ev.deviceId)?.udid;
        if (ev.type === 'detached') known.delete(ev.deviceId);
        print(ev.type, { deviceId: ev.deviceId, ...(udid ? { udid } : {}) });
      }
    }
  } catch (err) {
    signal.cancel();
    throw new Error(`lost the daemon: ${(err as Error).message}`);
  }
  signal.cancel();
  return 0;
}

export async function runDevices(args: string[]): Promise<number> {
  const { values } = parseCommandArgs({ args, options: { ...COMMON_OPTIONS, watch: { type: 'boolean', short: 'w' } } });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const address = daemonAddress(values.socket);
  if (values.watch) return watch(address, values.json ?? false);
  return list(address, values.json ?? false);
}
