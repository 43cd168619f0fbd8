// AFC packets (src/afc/protocol.ts): a stream of 40-byte headers, header
// data and payload, read the way the client reads replies: the header
// checked against a bound, then the lengths it announces taken from the
// bytes that follow, and the header data split into strings / key-values.
import { AFC_HEADER_SIZE, AfcError, decodeHeader, decodeKeyValues, decodeStrings, headerDataLength, payloadLength } from '../../../../src/afc/protocol.js';
import { bucket, summary, type Field, type Target } from '../target.js';

const MAX_BODY = 64 * 1024;

function run(input: Buffer): string {
  const parts: string[] = [];
  let at = 0;
  while (at + AFC_HEADER_SIZE <= input.length && parts.length < 8) {
    const h = decodeHeader(input.subarray(at, at + AFC_HEADER_SIZE), { maxBody: () => MAX_BODY });
    const dataLength = headerDataLength(h);
    const bodyLength = payloadLength(h);
    if (!Number.isSafeInteger(dataLength) || !Number.isSafeInteger(bodyLength) || dataLength < 0 || bodyLength < 0) {
      throw new Error(`decodeHeader passed lengths ${dataLength}/${bodyLength}`);
    }
    const end = at + AFC_HEADER_SIZE + dataLength + bodyLength;
    if (end > input.length) {
      parts.push('short');
      break;
    }
    const data = input.subarray(at + AFC_HEADER_SIZE, at + AFC_HEADER_SIZE + dataLength);
    parts.push(`${h.operation <= 0x30 ? h.operation : 'x'}:${decodeStrings(data).length > 1 ? 'n' : decodeStrings(data).length}:${Object.keys(decodeKeyValues(data)).length > 0 ? 'kv' : '-'}`);
    at = end;
  }
  return `${bucket(parts.length)}|${summary(parts)}`;
}

function fields(input: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at + AFC_HEADER_SIZE <= input.length && out.length < 64) {
    for (const o of [8, 16, 24, 32]) out.push({ offset: at + o, width: 8, endian: 'le' });
    const entire = input.readBigUInt64LE(at + 8);
    if (entire < BigInt(AFC_HEADER_SIZE) || entire > BigInt(input.length - at)) break;
    at += Number(entire);
  }
  return out;
}

export const afcTarget: Target = {
  name: 'afc',
  errors: [AfcError],
  run,
  fields,
  dictionary: [Buffer.from('CFA6LPAA', 'latin1'), Buffer.from('st_size\0'), Buffer.from('st_ifmt\0S_IFDIR\0'), Buffer.from([0])],
  maxLength: 8192,
};
