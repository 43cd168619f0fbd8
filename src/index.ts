// The package's public API ('tsmuxd'): the usbmuxd client library, RemoteXPC
// and socket addresses. It loads no native code, so it works wherever node
// does (macOS and Windows against Apple's usbmuxd included); the daemon, the
// data plane and the simulated phone, which need the Linux addon, are
// 'tsmuxd/daemon' (src/daemon-entry.ts).
export * from './client/index.js';
export {
  clientSocketAddress,
  parseSocketAddress,
  formatSocketAddress,
  platformSocketAddress,
  type SocketAddress,
} from './protocol/address.js';
export { NativeError } from './native/native-error.js';
export * as xpc from './xpc/index.js';
