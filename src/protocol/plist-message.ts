// A plist dict framed as a usbmuxd version-1 message (header version 1,
// message 8), as both ends send them.
import { toXml, type PlistDict } from './plist-codec.js';
import { encodeMessage, MessageType, ProtocolVersion } from './usbmux.js';

export function plistMessage(tag: number, dict: PlistDict): Buffer {
  return encodeMessage(ProtocolVersion.Plist, MessageType.Plist, tag, Buffer.from(toXml(dict), 'utf8'));
}
