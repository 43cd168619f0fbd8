// What the daemon says, in both protocol versions: results, device records
// and the Attached/Detached/Paired notifications.
import type { DeviceRecord } from '../devices/device-table.js';
import { toXml, type PlistDict } from '../pairing/plist-codec.js';
import {
  encodeDeviceAdd,
  encodeDeviceId,
  encodeMessage,
  encodeResultBinary,
  MessageType,
  ProtocolVersion,
} from './protocol.js';

export function plistMessage(tag: number, dict: PlistDict): Buffer {
  return encodeMessage(ProtocolVersion.Plist, MessageType.Plist, tag, Buffer.from(toXml(dict), 'utf8'));
}

export function resultMessage(version: number, tag: number, result: number): Buffer {
  return version === ProtocolVersion.Plist
    ? plistMessage(tag, { MessageType: 'Result', Number: result })
    : encodeResultBinary(tag, result);
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
