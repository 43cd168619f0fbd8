// The simulated phone's measuring services, served in C++ on the engine's
// event thread (native/sim/test_service.cc, MuxEngine.startTestService):
//
// - echo, device port 7: sends back every byte it gets.
// - sink, port 9: a request is an 8-byte big-endian length N followed by N
//   bytes; the answer is the SHA-256 of those bytes. With the top bit of the
//   length set the bytes are only counted and the answer is 32 zero bytes (for
//   benchmarks, where hashing would be the bottleneck). Requests may repeat on
//   one connection.
// - source, port 19: a request is an 8-byte length N; the answer is N random
//   bytes followed by their SHA-256, so the reader can check every byte
//   arrived intact. With the top bit set the bytes repeat one fixed random
//   block and the digest is 32 zero bytes. One request at a time.

export const DIGEST_LENGTH = 32;
export const UNHASHED = 1n << 63n;
