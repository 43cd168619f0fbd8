// The stats request, a plist MessageType of tsmuxd's own: its name and the
// version of its reply's layout, shared by the server and the client library.

export const STATS_MESSAGE = 'tsmuxdStats';
/** Bumped when a field changes meaning; new fields may appear at any time. */
export const STATS_VERSION = 1;
