// What the daemon says, in both protocol versions: results, device records
// and the Attached/Detached/Paired notifications.
import type { DeviceRecord } from '../devices/device-table.js';
import { toXml, type PlistDict } from '../protocol/plist-codec.js';
import {
  encodeDeviceAdd,
  encodeDeviceId,
  encodeMessage,
  encodeResultBinary,
  MessageType,
  ProtocolVersion,
} from '../protocol/usbmux.js';
import { plistMessage } from '../protocol/plist-message.js';

/** A reply waiting for its request's tag. */
export type Answer = (tag: number) => Buffer;

// Every Connect is answered with a Result, so its few distinct bodies are
// built once (the XML builder costs tens of µs a call).
const resultBodies = new Map<number, Buffer>();

export function resultMessage(version: number, tag: number, result: number): Buffer {
  if (version !== ProtocolVersion.Plist) return encodeResultBinary(tag, result);
  let body = resultBodies.get(result);
  if (!body) {
    body = Buffer.from(toXml({ MessageType: 'Result', Number: result }), 'utf8');
    if (resultBodies.size < 64) resultBodies.set(result, body);
  }
  return encodeMessage(ProtocolVersion.Plist, MessageType.Plist, tag, body);
}

export function deviceProperties(d: DeviceRecord): PlistDict {
  return {
    ConnectionSpeed: d.connectionSpeed,
    ConnectionType: d.connectionType,
    DeviceID: d.deviceId,
    LocationID: d.locationId,
    ProductID: d.productId,
    SerialNumber: d.serialNumber,
    USBSerialNumber: d.usbSerialNumber,
  };
}

export function attachedDict(d: DeviceRecord): PlistDict {
  return { MessageType: 'Attached', DeviceID: d.deviceId, Properties: deviceProperties(d) };
}

export function attachedMessage(version: number, d: DeviceRecord): Buffer {
  return version === ProtocolVersion.Plist
    ? plistMessage(0, attachedDict(d))
    : encodeDeviceAdd({ deviceId: d.deviceId, productId: d.productId, serial: d.serialNumber, location: d.locationId });
}

export function detachedMessage(version: number, d: DeviceRecord): Buffer {
  return version === ProtocolVersion.Plist
    ? plistMessage(0, { MessageType: 'Detached', DeviceID: d.deviceId })
    : encodeDeviceId(MessageType.DeviceRemove, d.deviceId);
}

export function pairedMessage(version: number, d: DeviceRecord): Buffer {
  return version === ProtocolVersion.Plist
    ? plistMessage(0, { MessageType: 'Paired', DeviceID: d.deviceId })
    : encodeDeviceId(MessageType.DevicePaired, d.deviceId);
}
