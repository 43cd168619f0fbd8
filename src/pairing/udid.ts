// The only gate between a client-supplied PairRecordID and a file name, so
// it is an exact character-class match with no normalisation: hex digits
// and dashes cannot spell a separator, a dot or a NUL, and the length bounds
// cover both the 40-hex UDIDs of older devices and the 25-character
// `00008101-000A1B2C3D4E5F60` form. Case is kept as given (usbmuxd does the
// same), so the same device spelt in two cases is two records.
const UDID_RE = /^[0-9A-Fa-f-]{24,40}$/;

export function isValidUdid(s: unknown): s is string {
  return typeof s === 'string' && UDID_RE.test(s);
}
