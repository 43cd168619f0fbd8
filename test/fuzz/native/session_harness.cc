// The peer model and the checks of the pseudo-TCP fuzzer (session_harness.h).
#include "session_harness.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz_check.h"

namespace tsmuxd::fuzz {

using namespace tsmuxd::mux;

Harness::Harness(const Config& config)
    : config_(config), transport_(*this, config.mps) {
  SessionOptions so;
  so.role = config.role;
  so.window = config.window;
  so.deviceVersion = config.version;
  session_ = std::make_shared<DeviceSession>(loop_, pool_, stats_, transport_, *this, 1, so);
  // The session clamps and rounds the window it advertises the same way.
  uint32_t w = std::min(std::max<uint32_t>(config.window, 1u << kWindowShift), kMaxWindow);
  receiveWindow_ = w & ~((1u << kWindowShift) - 1);
  session_->start();
}

Harness::~Harness() {
  // Connections hold the loop, the pool and the stats: they go first.
  for (auto& m : models_) m->conn.reset();
  session_.reset();
  driver_.clearGraveyard();
  for (uint8_t* p : batch_) std::free(p);
  FUZZ_CHECK(stats_.connectionsActive.load() == 0, "%llu connections outlived everything",
             (unsigned long long)stats_.connectionsActive.load());
}

// ---- framing the peer's packets ----

void Harness::frame(uint32_t protocol, const uint8_t* body, size_t len, std::vector<uint8_t>& out) {
  // VERSION is v1-framed both ways; everything else uses the agreed header.
  size_t hs = protocol == kProtoVersion || !session_ ? kHeaderSizeV1 : session_->headerSize();
  out.assign(hs + len, 0);
  MuxHeader h;
  h.protocol = protocol;
  h.length = uint32_t(hs + len);
  h.txSeq = peerTxSeq_++;
  h.rxSeq = 0xffff;
  writeMuxHeader(out.data(), hs, h);
  if (len) std::memcpy(out.data() + hs, body, len);
}

void Harness::transfer(const uint8_t* data, size_t len) {
  // Its own heap block, freed when the batch ends: a payload pointer kept
  // past the batch is a use after free.
  auto* block = static_cast<uint8_t*>(std::malloc(len ? len : 1));
  if (len) std::memcpy(block, data, len);
  batch_.push_back(block);
  if (session_) session_->onTransfer(block, len);
}

void Harness::deliver(const std::vector<uint8_t>& packet, uint32_t split, bool noZlp) {
  uint16_t mps = config_.mps ? config_.mps : 512;
  bool device = config_.role == Role::Device;
  if (split && packet.size() > 1) {
    size_t at = 1 + split % (packet.size() - 1);
    transfer(packet.data(), at);
    transfer(packet.data() + at, packet.size() - at);
    // A phone sees two messages; the model cannot tell what became of them.
    if (device) tainted_ = true;
  } else {
    transfer(packet.data(), packet.size());
  }
  if (device && packet.size() % mps == 0) {
    if (noZlp) {
      tainted_ = true;  // glued to the next message: the model loses track
    } else {
      transfer(nullptr, 0);
    }
  }
  settle();
}

void Harness::sendSegment(const Segment& s, uint32_t split, bool noZlp) {
  size_t hs = session_ ? session_->headerSize() : kHeaderSizeV2;
  uint32_t maxPayload = uint32_t(kMaxPacketLength - hs - kTcpHeaderSize);
  uint32_t len = std::min(s.payloadLen, maxPayload);
  std::vector<uint8_t> body(kTcpHeaderSize + len);
  TcpHeader th;
  th.sport = s.model ? s.model->peerPort : s.sport;
  th.dport = s.model ? s.model->sessionPort : s.dport;
  th.seq = s.seq;
  th.ack = s.ack;
  th.flags = s.flags;
  th.window = s.window;
  writeTcpHeader(body.data(), th);
  if (s.model && s.model->haveIsn) {
    // The bytes that belong at this sequence number, were it accepted.
    uint32_t offset = s.seq - (s.model->peerIsn + 1);
    for (uint32_t i = 0; i < len; ++i) {
      body[kTcpHeaderSize + i] = patternByte(s.model->salt, offset + i, false);
    }
  }
  static const bool trace = std::getenv("FUZZ_TRACE") != nullptr;
  if (trace) {
    std::fprintf(stderr, "  segment %u->%u flags 0x%x seq %u ack %u window %u len %u%s\n", th.sport,
                 th.dport, th.flags, th.seq, th.ack, th.window, len, tainted_ ? " (tainted)" : "");
  }
  if (s.model) {
    sent_.push_back(Sent{s.model, s.model->conn.get(), s.flags, s.seq, s.ack, len, s.window});
  }
  // Device role: a SYN that opens a connection tells the model its ISN.
  synPlan_ = SynPlan{s.flags == kSyn, s.seq, s.window, s.accept};
  std::vector<uint8_t> packet;
  frame(kProtoTcp, body.data(), body.size(), packet);
  deliver(packet, split, noZlp);
  synPlan_.valid = false;
}

void Harness::sendVersion(uint32_t major) {
  uint8_t body[kVersionBodySize] = {};
  putBe32(body, major);
  std::vector<uint8_t> packet;
  frame(kProtoVersion, body, sizeof body, packet);
  deliver(packet, 0, false);
}

void Harness::sendSetup(uint8_t level) {
  std::vector<uint8_t> packet;
  frame(kProtoSetup, &level, 1, packet);
  deliver(packet, 0, false);
}

void Harness::sendControl(uint8_t type, const uint8_t* text, size_t len) {
  std::vector<uint8_t> body(1 + len);
  body[0] = type;
  if (len) std::memcpy(body.data() + 1, text, len);
  std::vector<uint8_t> packet;
  frame(kProtoControl, body.data(), body.size(), packet);
  deliver(packet, 0, false);
}

void Harness::sendRaw(const uint8_t* data, size_t len) {
  tainted_ = true;  // may hold segments the model never saw
  synPlan_.valid = false;
  transfer(data, len);
  settle();
}

void Harness::handshake() {
  if (config_.role == Role::Host) {
    sendVersion(uint32_t(config_.version));  // the device's answer to start()
  } else {
    sendVersion(2);
    if (session_ && session_->state() == DeviceSession::State::AwaitSetup) sendSetup(kSetupLogLevel);
  }
  endTurn();
}

// Once a transfer is in, a segment the connection survived was accepted: a
// rejected one always resets it. Not so once the input was misframed: a
// segment may then have been dropped whole.
void Harness::settle() {
  if (tainted_) sent_.clear();
  for (const Sent& s : sent_) {
    PeerConn& m = *s.model;
    if (!s.conn || m.conn.get() != s.conn || (s.flags & kRst)) continue;
    Connection::State st = s.conn->state();
    if (st == Connection::State::Draining || st == Connection::State::Closed) continue;
    if (s.flags & kSyn) {
      m.peerIsn = s.seq;
      m.haveIsn = true;
      m.peerNext = s.seq + 1;
      // A SYN's ACK field means nothing; a SYN|ACK acknowledges our SYN.
      m.rightEdge = ((s.flags & kAck) ? s.ack : 0) + unscaleWindow(s.window);
    } else {
      m.peerNext = s.seq + s.len;
      m.rightEdge = s.ack + unscaleWindow(s.window);
    }
    m.haveEdge = true;
  }
  sent_.clear();
}

void Harness::endBatch() {
  if (session_ && !batch_.empty()) session_->onTransferBatchEnd();
  for (uint8_t* p : batch_) std::free(p);
  batch_.clear();
}

void Harness::endTurn() {
  endBatch();
  driver_.endTurn();
  checkConnections();
}

// ---- the other side's actions ----

PeerConn* Harness::connect(uint16_t port, uint32_t isn, uint64_t timeoutMs) {
  if (!session_ || config_.role != Role::Host) return nullptr;
  Fault fault;
  auto conn = session_->connect(mux::allocateConnectionId(), port, timeoutMs, fault);
  if (!conn) return nullptr;
  auto m = std::make_unique<PeerConn>();
  m->conn = conn;
  m->key = conn->key();
  m->sessionPort = conn->localPort();
  m->peerPort = conn->remotePort();
  m->salt = uint8_t(models_.size());
  m->peerIsn = isn;
  live_[m->key] = m.get();
  models_.push_back(std::move(m));
  return models_.back().get();
}

void Harness::attach(PeerConn& m) {
  // As Engine::attachClient: only to a connection with no client yet.
  if (!m.conn || m.conn->hasIo() || m.conn->state() == Connection::State::Closed) return;
  auto client = std::make_shared<FakeClient>(loop_, m.conn.get(), m, tainted_, true);
  m.client = client;
  m.conn->setIo(client);
}

void Harness::onIncomingConnection(DeviceSession&, const std::shared_ptr<Connection>& conn) {
  auto m = std::make_unique<PeerConn>();
  m->conn = conn;
  m->key = conn->key();
  m->sessionPort = conn->localPort();
  m->peerPort = conn->remotePort();
  m->salt = uint8_t(models_.size());
  if (synPlan_.valid) {
    m->peerIsn = synPlan_.isn;
    m->haveIsn = true;
    m->peerNext = synPlan_.isn + 1;
    m->rightEdge = unscaleWindow(synPlan_.window);  // acknowledging nothing yet
    m->haveEdge = true;
  }
  bool accept = !synPlan_.valid || synPlan_.accept;
  synPlan_.valid = false;
  auto client = std::make_shared<FakeClient>(loop_, conn.get(), *m, tainted_, accept);
  m->client = client;
  conn->setIo(client);
  client->poke();  // the local connect finishes at the end of the turn
  live_[m->key] = m.get();
  models_.push_back(std::move(m));
}

void Harness::setCongested(bool on) {
  bool was = transport_.congested_;
  transport_.congested_ = on;
  if (was && !on && session_) session_->onTransportDrained();
}

void Harness::dropSession() {
  // As Engine::linkClosed: the session may be deep in its own input path.
  loop_.retire(session_);
  session_.reset();
}

void Harness::unplug() {
  if (!session_) return;
  session_->onTransportClosed(Fault(codes::kUnplugged, "unplugged"));
}

void Harness::onSessionFailed(DeviceSession& s, const Fault& why) {
  FUZZ_CHECK(&s == session_.get(), "a failure from a session already dropped");
  transport_.close();
  s.peerGone(why.message);
  dropSession();
}

void Harness::shutdown() {
  // As DeviceLink::shutdown: RSTs reach the device before the link closes.
  if (!session_) return;
  session_->resetAll("device closed by the daemon");
  transport_.close();
  session_->peerGone("device closed by the daemon");
  dropSession();
}

// ---- connection ends ----

PeerConn* Harness::modelFor(const Connection& c) {
  for (auto& m : models_) {
    if (m->conn.get() == &c) return m.get();
  }
  return nullptr;
}

void Harness::ended(Connection& c) {
  PeerConn* m = modelFor(c);
  FUZZ_CHECK(m, "connection %u ended twice or was never opened", c.id());
  FUZZ_CHECK(!m->ended, "connection %u ended twice", c.id());
  FUZZ_CHECK(c.state() == Connection::State::Closed, "connection %u ended while open", c.id());
  m->ended = true;
  auto it = live_.find(m->key);
  if (it != live_.end() && it->second == m) live_.erase(it);
  // As Engine::forgetConnection: alive until the end of the turn.
  loop_.retire(m->conn);
  m->conn.reset();
}

void Harness::onConnectFailed(Connection& c, const char*, const std::string&) { ended(c); }
void Harness::onConnectionClosed(Connection& c, const std::string&) { ended(c); }

void Harness::finish() {
  // Quiet turns first: whatever deferred work was left settles, and nothing
  // may be left waiting that could go.
  for (int i = 0; i < 8; ++i) endTurn();
  checkLiveness();
  // Tear down as the daemon does, then let every timer run out: by then every
  // connection must have reported its end.
  shutdown();
  endTurn();
  for (int i = 0; i < 4; ++i) {
    for (auto& m : models_) {
      if (auto c = m->client.lock()) {
        c->capacity_ = 0;  // a reader that never reads: only the timeout ends it
        c->poke();
      }
    }
    advance(31000);
    endTurn();
  }
  for (auto& m : models_) {
    FUZZ_CHECK(m->ended && !m->conn, "connection on port %u never reported its end",
               m->sessionPort);
  }
  FUZZ_CHECK(driver_.pendingTimers() == 0, "%zu timers left", driver_.pendingTimers());
}

}  // namespace tsmuxd::fuzz
