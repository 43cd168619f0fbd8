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
import { encodeNetworkAddress, type AddressLayout } from '../protocol/network-address.js';

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

/**
 * `layout`: how this client reads NetworkAddress (layoutForClient); only
 * network entries use it.
 */
export function deviceProperties(d: DeviceRecord, layout: AddressLayout = 'bsd'): PlistDict {
  // A remote host's phone: what its host said, under our DeviceID (docs/remote.md).
  if (d.remote) return { ...(d.remote.properties as PlistDict), DeviceID: d.deviceId };
  if (d.network) {
    // What Apple's muxer, usbmuxd2 and netmuxd give for a phone on Wi-Fi
    // (reference tunnel-wifi-remote §3.3); InterfaceIndex only when known.
    return {
      ConnectionType: 'Network',
      DeviceID: d.deviceId,
      EscapedFullServiceName: d.network.serviceName,
      ...(d.network.interfaceIndex ? { InterfaceIndex: d.network.interfaceIndex } : {}),
      NetworkAddress: encodeNetworkAddress(d.network.endpoint, layout),
      SerialNumber: d.serialNumber,
    };
  }
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

export function attachedDict(d: DeviceRecord, layout: AddressLayout = 'bsd'): PlistDict {
  return { MessageType: 'Attached', DeviceID: d.deviceId, Properties: deviceProperties(d, layout) };
}

/**
 * Binary v0 has no ConnectionType: a v0 client would take a network entry
 * for a USB phone, so v0 clients never hear of network entries.
 */
export function visibleInVersion(version: number, d: DeviceRecord): boolean {
  return version === ProtocolVersion.Plist || d.connectionType !== 'Network';
}

export function attachedMessage(version: number, d: DeviceRecord, layout: AddressLayout = 'bsd'): Buffer {
  return version === ProtocolVersion.Plist
    ? plistMessage(0, attachedDict(d, layout))
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
