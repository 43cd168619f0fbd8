// The device (server) side of the RemoteXPC handshake as a rule table
// (reference §3.2.1, device rules 1-5). It answers the three client
// orderings in use (pymobiledevice3/appium: A, HEADERS#3, C, B;
// idevice: A, HEADERS#3, B, C; go-ios: waits after SETTINGS, A, B and C):
//
//   connect           -> SETTINGS, WINDOW_UPDATE(0)   (SETTINGS is always first)
//   SETTINGS          -> SETTINGS ACK                  (every one)
//   HEADERS#1         -> HEADERS#1
//   A  (1, 0x1)       -> empty dictionary on 1
//   HEADERS#3         -> HEADERS#3
//   B  (3, 0x400001)  -> header-only on 3
//   C  (1, 0x201)     -> header-only on 1
//   HEADERS#3 + B + C -> the peer-info message on 1   (optional: RSD only)
//
// The peer-info waits for the client's DATA on REPLY_CHANNEL, never for its
// first DATA on ROOT_CHANNEL: a client that has not opened stream 3 yet
// resets it when the big reply comes early. It follows C's answer directly,
// as go-ios reads it as the next stream-1 message.
import {
  dataFrames,
  headersFrame,
  REPLY_CHANNEL,
  ROOT_CHANNEL,
  Setting,
  settingsAckFrame,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from './http2-frames.js';
import { encodeMessage, XpcFlags } from './message.js';
import type { EventPattern, Rule } from './rules.js';
import type { XpcDictionary } from './values.js';

export const DEVICE_MAX_CONCURRENT_STREAMS = 100;
export const DEVICE_INITIAL_WINDOW = 1024 * 1024;
/** The connection window grows from the default 65535 to 1 MiB. */
export const DEVICE_CONNECTION_WINDOW_INCREMENT = DEVICE_INITIAL_WINDOW - 65535;

export const HANDSHAKE_A_FLAGS = XpcFlags.alwaysSet;
export const HANDSHAKE_B_FLAGS = XpcFlags.alwaysSet | XpcFlags.initHandshake;
export const HANDSHAKE_C_FLAGS = XpcFlags.alwaysSet | XpcFlags.handshake201;
/** Peer-info and other requests: ALWAYS_SET | DATA_PRESENT. */
export const PEER_INFO_FLAGS = XpcFlags.alwaysSet | XpcFlags.dataPresent;

export const HANDSHAKE_A: EventPattern = { on: 'message', stream: ROOT_CHANNEL, flags: HANDSHAKE_A_FLAGS };
export const HANDSHAKE_B: EventPattern = { on: 'message', stream: REPLY_CHANNEL, flags: HANDSHAKE_B_FLAGS };
export const HANDSHAKE_C: EventPattern = { on: 'message', stream: ROOT_CHANNEL, flags: HANDSHAKE_C_FLAGS };
export const OPEN_ROOT: EventPattern = { on: 'headers', stream: ROOT_CHANNEL };
export const OPEN_REPLY: EventPattern = { on: 'headers', stream: REPLY_CHANNEL };

export const deviceSettingsFrames = (): Frame[] => [
  settingsFrame([
    [Setting.maxConcurrentStreams, DEVICE_MAX_CONCURRENT_STREAMS],
    [Setting.initialWindowSize, DEVICE_INITIAL_WINDOW],
  ]),
  windowUpdateFrame(0, DEVICE_CONNECTION_WINDOW_INCREMENT),
];

const message = (stream: number, flags: number, body?: XpcDictionary): Frame[] =>
  dataFrames(stream, encodeMessage({ flags, messageId: 0n, body }));

/** The names of the handshake rules, in table order. */
export const HANDSHAKE_RULES = ['settings', 'settings-ack', 'open-root', 'reply-a', 'open-reply', 'reply-b', 'reply-c', 'peer-info'] as const;

/**
 * The device's handshake table; with `peerInfo` (an RSD endpoint) the
 * peer-info message goes out on stream 1 (flags 0x101, id 1) once the
 * handshake is complete.
 */
export function deviceHandshakeRules(peerInfo?: XpcDictionary): Rule[] {
  const rules: Rule[] = [
    { name: 'settings', when: { on: 'connect' }, emit: deviceSettingsFrames() },
    { name: 'settings-ack', when: { on: 'settings' }, emit: [settingsAckFrame()], repeat: true },
    { name: 'open-root', when: OPEN_ROOT, emit: [headersFrame(ROOT_CHANNEL)] },
    { name: 'reply-a', when: HANDSHAKE_A, emit: () => message(ROOT_CHANNEL, HANDSHAKE_A_FLAGS, new Map()) },
    { name: 'open-reply', when: OPEN_REPLY, emit: [headersFrame(REPLY_CHANNEL)] },
    { name: 'reply-b', when: HANDSHAKE_B, emit: () => message(REPLY_CHANNEL, HANDSHAKE_B_FLAGS) },
    { name: 'reply-c', when: HANDSHAKE_C, emit: () => message(ROOT_CHANNEL, HANDSHAKE_C_FLAGS) },
  ];
  if (peerInfo) {
    rules.push({
      name: 'peer-info',
      when: [OPEN_REPLY, HANDSHAKE_B, HANDSHAKE_C],
      emit: () => dataFrames(ROOT_CHANNEL, encodeMessage({ flags: PEER_INFO_FLAGS, messageId: 1n, body: peerInfo })),
    });
  }
  return rules;
}
