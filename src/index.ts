// The package's public API: the usbmuxd client library, and the pieces to
// embed a daemon or a simulated phone.
export * from './client/index.js';
export { Daemon, type DaemonOptions } from './daemon/daemon.js';
export { parseSocketAddress, formatSocketAddress, type SocketAddress } from './protocol/address.js';
export { MuxEngine } from './native/mux-engine.js';
export { NativeError } from './native/addon.js';
export { startPeer, type Peer } from './sim/peer.js';
export * as xpc from './xpc/index.js';
