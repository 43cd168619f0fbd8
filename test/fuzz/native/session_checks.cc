// What the session may send and what its connections may hold: the checks
// of the pseudo-TCP fuzzer (session_harness.h). Each one names the rule of
// native/mux/connection.h it guards.
#include <cstring>

#include "fuzz_check.h"
#include "session_harness.h"

namespace tsmuxd::fuzz {

using namespace tsmuxd::mux;

void Harness::checkOutgoing(const core::OutPacket& p) {
  if (!session_) return;
  size_t hs = session_->headerSize();
  size_t n = p.size();
  const uint8_t* d = p.data();
  // Every packet ends on a short USB packet: at most 49151 bytes.
  FUZZ_CHECK(n >= hs && n < kMaxSendLength, "sent a packet of %zu bytes", n);
  uint32_t protocol = getBe32(d);
  FUZZ_CHECK(getBe32(d + 4) == n, "length field %u for %zu bytes", getBe32(d + 4), n);
  FUZZ_CHECK(isKnownProtocol(protocol), "sent protocol %u", protocol);
  if (hs == kHeaderSizeV2) {
    FUZZ_CHECK(getBe32(d + 8) == kMagic, "v2 magic 0x%x", getBe32(d + 8));
    int tx = getBe16(d + 12);
    int want = outSeq_ < 0 ? 0 : (outSeq_ + 1) & 0xffff;
    FUZZ_CHECK(tx == want, "txSeq %d where %d was due", tx, want);
    outSeq_ = tx;
  } else if (protocol == kProtoVersion) {
    outSeq_ = -1;  // the v2 sequence starts again after a VERSION
  }
  if (protocol != kProtoTcp) return;
  TcpHeader th;
  Fault f = readTcpHeader(d + hs, n - hs, th);
  FUZZ_CHECK(!f, "sent a TCP packet we cannot parse: %s", f.message.c_str());
  uint32_t len = uint32_t(n - hs - kTcpHeaderSize);
  FUZZ_CHECK(th.flags == kSyn || th.flags == (kSyn | kAck) || th.flags == kAck ||
                 th.flags == kRst,
             "sent flags 0x%x", th.flags);
  if (th.flags & kSyn) FUZZ_CHECK(th.seq == 0 && len == 0, "SYN with seq %u, %u bytes", th.seq, len);
  // A host's SYN leaves before connect() returns its connection.
  if (th.flags == kSyn) return;
  uint32_t key = (uint32_t(th.sport) << 16) | th.dport;
  auto it = live_.find(key);
  if (it == live_.end()) {
    FUZZ_CHECK(th.flags == kRst, "flags 0x%x on ports %u->%u with no connection", th.flags,
               th.sport, th.dport);
    return;
  }
  PeerConn& m = *it->second;
  if (th.flags & kAck) {
    // We ACK only what the local side has taken: a reader that stalls must
    // stall the peer, not grow our memory.
    if (m.haveIsn && !tainted_) {
      uint32_t want = m.peerIsn + 1 + uint32_t(m.takenByLocal);
      FUZZ_CHECK(th.ack == want, "ACK %u, but the local side took up to %u", th.ack, want);
    }
    m.sessionAck = th.ack;
    m.sessionWindow = unscaleWindow(th.window);
    m.sessionAdvertised = true;
    FUZZ_CHECK(m.sessionWindow <= receiveWindow_, "advertised %u of a %u window",
               m.sessionWindow, receiveWindow_);
  }
  if (th.flags != kAck || len == 0) return;
  FUZZ_CHECK(m.conn && m.conn->state() == Connection::State::Established,
             "data on a connection that is not established");
  FUZZ_CHECK(th.seq == m.sessionNext, "data at seq %u where %u was next", th.seq, m.sessionNext);
  if (!tainted_) {
    // Never past the peer's window.
    FUZZ_CHECK(m.haveEdge, "data before the peer advertised a window");
    FUZZ_CHECK(int32_t(th.seq + len - m.rightEdge) <= 0,
               "sent %u bytes at seq %u past the peer's window edge %u", len, th.seq,
               m.rightEdge);
  }
  const uint8_t* payload = d + hs + kTcpHeaderSize;
  for (uint32_t i = 0; i < len; ++i) {
    FUZZ_CHECK(payload[i] == patternByte(m.salt, th.seq - 1 + i, true),
               "sent a wrong byte at stream offset %u", th.seq - 1 + i);
  }
  m.sessionNext += len;
}

void Harness::checkConnections() {
  for (auto& mp : models_) {
    PeerConn& m = *mp;
    if (!m.conn) continue;
    Connection& c = *m.conn;
    FUZZ_CHECK(c.state() != Connection::State::Closed,
               "connection %u closed without telling its observer", c.id());
    mux::ConnectionSnapshot s;
    c.snapshot(s, 0);
    // The peer may send only into our window, so that is all we ever hold.
    FUZZ_CHECK(s.queued <= receiveWindow_, "connection %u holds %llu bytes of a %u window",
               c.id(), (unsigned long long)s.queued, receiveWindow_);
    if (c.state() != Connection::State::Established) continue;
    FUZZ_CHECK(s.inFlight <= m.sessionNext - 1, "%u bytes in flight of %u sent", s.inFlight,
               m.sessionNext - 1);
    if (!tainted_ && m.haveEdge) {
      uint32_t una = m.sessionNext - s.inFlight;
      FUZZ_CHECK(una + s.sendWindow == m.rightEdge,
                 "connection %u thinks the peer's window ends at %u, the peer said %u", c.id(),
                 una + s.sendWindow, m.rightEdge);
    }
  }
}

// After quiet turns nothing may stall that could move: a lost ACK or a lost
// "window open" wake-up would hang a real transfer for good.
void Harness::checkLiveness() {
  if (!session_ || tainted_ || transport_.congested_) return;
  for (auto& mp : models_) {
    PeerConn& m = *mp;
    if (!m.conn || m.conn->state() != Connection::State::Established || !m.haveIsn) continue;
    // Every byte the local side took has been ACKed, so the peer may go on.
    uint32_t taken = m.peerIsn + 1 + uint32_t(m.takenByLocal);
    FUZZ_CHECK(m.sessionAdvertised && m.sessionAck == taken,
               "connection %u last ACKed %u; the local side took up to %u", m.conn->id(),
               m.sessionAck, taken);
    auto client = m.client.lock();
    if (!client || !client->active() || !m.haveEdge) continue;
    // Bytes to send and room in the peer's window: they must have gone.
    int32_t room = int32_t(m.rightEdge - m.sessionNext);
    FUZZ_CHECK(room <= 0 || client->pendingOut_ == 0,
               "connection %u holds %llu bytes to send with %d bytes of window open",
               m.conn->id(), (unsigned long long)client->pendingOut_, room);
  }
}

}  // namespace tsmuxd::fuzz
