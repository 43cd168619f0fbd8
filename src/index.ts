// The package's public API: the usbmuxd client library, and the pieces to
// embed a daemon or a simulated phone.
export * from './client/index.js';
export { Daemon, type DaemonOptions } from './server/daemon.js';
export { parseSocketAddress, formatSocketAddress, type SocketAddress } from './server/address.js';
export { MuxEngine } from './devices/mux-engine.js';
export { NativeError } from './native.js';
export { startPeer, type Peer } from './sim/peer.js';
export * as xpc from './xpc/index.js';
