// Pair records, host identity and the plist codec they share with the
// usbmuxd protocol server.
export { isValidUdid } from './udid.js';
export { PlistError, isPlistDict, parsePlist, toXml, type PlistDict, type PlistValue } from '../protocol/plist-codec.js';
export {
  PairRecordError,
  PairRecordStore,
  defaultConfigDir,
  type PairRecordErrorCode,
  type PairRecordStoreOptions,
} from './store.js';
