// RemoteXPC's public surface (docs/xpc.md).
export * from './errors.js';
export * from './values.js';
export { encodeObject, decodeObject, XpcType, MAX_DEPTH } from './object-codec.js';
export { encodeMessage, decodeMessage, MessageAssembler, XpcFlags, type XpcMessage } from './message.js';
export { HostConnection, HANDSHAKE_ORDERINGS, type HandshakeOrdering } from './host-connection.js';
export { DeviceConnection, type DeviceConnectionOptions } from './device-connection.js';
export { deviceHandshakeRules } from './device-rules.js';
export { RuleDispatcher, type Rule, type EventPattern, type PeerEvent } from './rules.js';
export { loadSessionFixture, parseSessionFixture, planReplay, replayRules, type RecordedSession } from './replay.js';
export { buildPeerInfo, parsePeerInfo, xpcToJson, RSD_PORT, type PeerInfo, type RsdServiceEntry, type RsdServiceProvider } from './rsd.js';
export { openShimService, rsdCheckin, RsdCheckinError } from './rsd-checkin.js';
