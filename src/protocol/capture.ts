// The capture request, a plist MessageType of tsmuxd's own (docs/capture.md),
// shared by the server and the client library. The request may carry UDID
// (one phone; also when it is replugged), Port (one device port: its mux
// connections and, inside its tunnel, the TCP/UDP packets with that port)
// and RingBytes (the ring between the data path and the writer). The reply
// is a Result dictionary; after Number 0 the socket carries pcapng until
// the client half-closes it (the daemon then writes the statistics and
// closes) or goes away. Another user's request gets 13, another daemon's 1.

export const CAPTURE_MESSAGE = 'tsmuxdCapture';

/** The ring's bounds and default, as the data plane holds them (core/capture_tap.h). */
export const MIN_CAPTURE_RING_BYTES = 64 << 10;
export const MAX_CAPTURE_RING_BYTES = 256 << 20;
export const DEFAULT_CAPTURE_RING_BYTES = 32 << 20;

export interface CaptureRequest {
  udid?: string;
  port?: number;
  ringBytes?: number;
}
