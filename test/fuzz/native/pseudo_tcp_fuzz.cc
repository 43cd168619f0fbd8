// Fuzzes the pseudo-TCP state machine (native/mux/connection.*, driven
// through native/mux/device_session.*) in either role. The input is a script:
// a config byte, then operations that the peer, the local end, the daemon
// and the clock perform; session_harness.h holds the model that checks the
// session after each one.
//
// Config byte: bit 0 device role; bit 1 mux v1; bits 2-3 receive window;
// bits 4-5 wMaxPacketSize; bit 6 no automatic VERSION/SETUP handshake.
// Operation byte: low 4 bits the kind (below); 0x80 keeps the USB batch and
// the loop turn open for the next operation; 0x40 omits a due ZLP (device
// role); 0x20 splits the packet into two transfers at a fuzzed offset.
// Fields are big-endian; past the input's end they read as zero.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "fuzz_check.h"
#include "session_harness.h"

using namespace tsmuxd;
using namespace tsmuxd::mux;
using tsmuxd::fuzz::Harness;
using tsmuxd::fuzz::PeerConn;

namespace {

enum Op : uint8_t {
  kSegment = 0,   // u8 conn, u8 flags, i8 seq delta, u8 ack mode, u16 window, u16 length
  kRaw,           // u16 length, bytes: one transfer as is
  kOpen,          // host: u16 port, u32 peer ISN, u8 timeout; device: a SYN (below)
  kLocalWrite,    // u8 conn, u16 bytes the local end wants to send
  kLocalRead,     // u8 conn, u16 bytes the local end will take
  kLocalClose,    // u8 conn
  kDaemonClose,   // u8 conn: Engine::closeConnection
  kAttach,        // u8 conn: host role, hand the connection its client
  kTime,          // u16: that many 8 ms steps pass
  kCongestion,    // u8: bit 0 sets the transport's queue above the high mark
  kUnplug,        //
  kVersion,       // u8 major
  kControl,       // u8 type, u8 length, text
  kSetup,         // u8 log level
  kShutdown,      // DeviceLink::shutdown
  kEndTurn,       //
};

PeerConn* pick(Harness& h, uint8_t sel) {
  auto& models = h.models();
  return models.empty() ? nullptr : models[sel % models.size()].get();
}

std::shared_ptr<fuzz::FakeClient> clientOf(Harness& h, uint8_t sel) {
  PeerConn* m = pick(h, sel);
  return m ? m->client.lock() : nullptr;
}

void segment(Harness& h, fuzz::InputReader& in, uint32_t split, bool noZlp) {
  PeerConn* m = pick(h, in.u8());
  uint8_t flagSel = in.u8();
  int8_t seqDelta = int8_t(in.u8());
  uint8_t ackMode = in.u8();
  uint16_t window = in.u16();
  uint16_t length = in.u16();
  if (!m) return;
  m = h.current(m);
  Harness::Segment s;
  s.model = m;
  // Mostly what a peer sends; sometimes anything at all.
  static const uint8_t kFlags[] = {kAck, kAck, kAck, kAck, kAck, kRst, kSyn | kAck};
  s.flags = (flagSel & 7) < 7 ? kFlags[flagSel & 7] : uint8_t(flagSel >> 3);
  s.seq = ((s.flags & kSyn) ? m->peerIsn : m->peerNext) + uint32_t(int32_t(seqDelta));
  // The peer ACKs all the session sent, or lags behind, or says anything.
  uint32_t ackAll = m->sessionNext;
  if (ackMode == 0) {
    s.ack = ackAll;
  } else if (ackMode < 0x80) {
    uint32_t back = std::min<uint32_t>(ackMode * 64u, m->sessionNext - 1);
    s.ack = ackAll - back;
  } else {
    s.ack = ackAll + uint32_t(int32_t(int8_t(ackMode << 1)));
  }
  if (s.flags & kSyn) s.ack = 1;
  s.window = window;
  // Bit 15: any length; otherwise no more than the session's window allows.
  if (length & 0x8000) {
    s.payloadLen = length & 0x7fff;
  } else {
    int32_t room = m->sessionAdvertised
                       ? int32_t(m->sessionAck + m->sessionWindow - m->peerNext)
                       : 0;
    s.payloadLen = std::min<uint32_t>(length, uint32_t(std::max(room, 0)));
  }
  h.sendSegment(s, split, noZlp);
}

void open(Harness& h, fuzz::InputReader& in, uint32_t split, bool noZlp) {
  if (h.config().role == Role::Host) {
    uint16_t port = in.u16();
    uint32_t isn = in.u32();
    uint64_t timeoutMs = (uint64_t(in.u8()) + 1) * 100;
    h.connect(port, isn, timeoutMs);
    return;
  }
  // Device role, a host's SYN: u16 source port, u16 service port, u32 ISN,
  // u16 window, u8 bit 0 the local service accepts.
  Harness::Segment s;
  s.sport = in.u16();
  s.dport = in.u16();
  s.seq = in.u32();
  s.window = in.u16();
  bool accept = (in.u8() & 1) == 0;
  s.flags = kSyn;
  s.payloadLen = 0;
  s.accept = accept;
  h.sendSegment(s, split, noZlp);
}

void step(Harness& h, fuzz::InputReader& in) {
  uint8_t op = in.u8();
  bool keepTurn = op & 0x80;
  bool noZlp = op & 0x40;
  uint32_t split = (op & 0x20) ? in.u16() : 0;
  // FUZZ_TRACE=1 prints the script as it runs, to read a crash input by.
  static const bool trace = std::getenv("FUZZ_TRACE") != nullptr;
  if (trace) {
    std::fprintf(stderr, "op %u%s%s split %u (%zu bytes left)\n", op & 0x0f,
                 keepTurn ? " +turn" : "", noZlp ? " noZLP" : "", split, in.remaining());
  }
  switch (Op(op & 0x0f)) {
    case kSegment: segment(h, in, split, noZlp); break;
    case kRaw: {
      size_t len = in.u16() % 2048;
      const uint8_t* at = in.bytes(len);
      h.sendRaw(at, len);
      break;
    }
    case kOpen: open(h, in, split, noZlp); break;
    case kLocalWrite: {
      auto c = clientOf(h, in.u8());
      uint16_t n = in.u16();
      if (c) {
        c->pendingOut_ += n;
        c->poke();
      }
      break;
    }
    case kLocalRead: {
      auto c = clientOf(h, in.u8());
      uint16_t n = in.u16();
      if (c) {
        c->capacity_ += n;
        c->poke();
      }
      break;
    }
    case kLocalClose: {
      if (auto c = clientOf(h, in.u8())) {
        c->closeWanted_ = true;
        c->poke();
      }
      break;
    }
    case kDaemonClose: {
      PeerConn* m = pick(h, in.u8());
      if (m && m->conn) m->conn->reset("closed by the daemon");
      break;
    }
    case kAttach: {
      PeerConn* m = pick(h, in.u8());
      if (m && h.config().role == Role::Host) h.attach(*m);
      break;
    }
    case kTime: h.advance(uint64_t(in.u16()) * 8); break;
    case kCongestion: h.setCongested(in.u8() & 1); break;
    case kUnplug: h.unplug(); break;
    case kVersion: h.sendVersion(in.u8()); break;
    case kControl: {
      uint8_t type = in.u8();
      size_t len = in.u8();
      const uint8_t* text = in.bytes(len);
      h.sendControl(type, text, len);
      break;
    }
    case kSetup: h.sendSetup(in.u8()); break;
    case kShutdown: h.shutdown(); break;
    case kEndTurn: break;
  }
  if (!keepTurn) h.endTurn();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  uint8_t config = in.u8();
  fuzz::Config c;
  c.role = (config & 1) ? Role::Device : Role::Host;
  c.version = (config & 2) ? 1 : 2;
  static const uint32_t kWindows[] = {256 << 10, 4096, 64 << 10, 32 << 20};
  c.window = kWindows[(config >> 2) & 3];
  static const uint16_t kPacketSizes[] = {512, 64, 1024, 0};
  c.mps = kPacketSizes[(config >> 4) & 3];
  {
    Harness h(c);
    if (!(config & 0x40)) h.handshake();
    // A bound on work per input, whatever its length.
    for (int ops = 0; !in.done() && ops < 512; ++ops) step(h, in);
    h.finish();
  }
  return 0;
}
