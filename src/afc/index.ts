// Apple File Conduit: the wire format and a host-side client.
export * from './protocol.js';
export { AfcClient, AFC_CHUNK, type AfcClientOptions, type AfcDeviceInfo, type AfcFileInfo, type AfcOpenMode } from './client.js';
export { ByteReader, writeParts } from './byte-reader.js';
