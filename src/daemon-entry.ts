// 'tsmuxd/daemon': the pieces to embed a daemon or a simulated phone. Importing
// it loads the native addon (Linux only); where there is none it throws a
// NativeUnavailableError that says so. The client library is 'tsmuxd'.
export { Daemon, type DaemonOptions } from './daemon/daemon.js';
export { MuxEngine } from './native/mux-engine.js';
export { NativeError, NativeUnavailableError } from './native/addon.js';
export { startPeer, type Peer } from './sim/peer.js';
