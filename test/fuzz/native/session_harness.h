#pragma once
// The pieces the pseudo-TCP fuzzer (pseudo_tcp_fuzz.cc) drives a DeviceSession
// with: a transport that checks every packet the session sends, a local end
// (the daemon's client socket or the phone's service) that takes and writes
// bytes as told, and a model of the peer that builds its packets and knows
// what the session may and may not do in reply.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "loop_driver.h"
#include "mux/connection.h"
#include "mux/device_session.h"
#include "core/buffers.h"
#include "core/event_loop.h"
#include "core/stats.h"
#include "mux/link.h"

namespace tsmuxd::fuzz {

// Payload bytes are a function of their stream offset, so that any byte
// delivered twice, dropped or reordered shows up at the other end.
inline uint8_t patternByte(uint8_t salt, uint32_t offset, bool toPeer) {
  uint32_t x = offset * 2654435761u + salt * 40503u + (toPeer ? 0x5a : 0xa5);
  return uint8_t(x >> 24);
}

class Harness;
struct PeerConn;

class FakeTransport : public mux::PacketLink {
 public:
  explicit FakeTransport(Harness& h, uint16_t mps) : harness_(h), mps_(mps) {}
  void send(core::OutPacket packet, bool zlp) override;
  bool congested() const override { return congested_; }
  uint16_t maxPacketSize() const override { return mps_; }
  void close() { closed_ = true; }

  bool congested_ = false;
  bool closed_ = false;

 private:
  Harness& harness_;
  uint16_t mps_;
};

// The local end of one connection, shaped like FdPump: it works at the end
// of the turn, takes at most `capacity` bytes, and writes `pendingOut` bytes.
class FakeClient : public mux::ConnectionIo, public core::Deferred {
 public:
  FakeClient(core::EventLoop& loop, mux::Connection* conn, PeerConn& model, const bool& tainted,
             bool accept)
      : loop_(loop), conn_(conn), model_(model), tainted_(tainted),
        decided_(conn->role() == mux::Role::Host), accept_(accept) {}

  size_t offer(const struct iovec* iov, int count) override;
  void inboundReady() override { poke(); }
  void sendReady() override { poke(); }
  void finish() override;
  void abort() override { closed_ = true; }
  void runDeferred() override;

  void poke() {
    if (!closed_) loop_.defer(this);
  }
  // Open, connected, and not flushing a connection the peer ended.
  bool active() const { return !closed_ && !finishing_ && decided_ && !closeWanted_; }

  uint64_t capacity_ = 0;    // bytes the local side will still take
  uint64_t pendingOut_ = 0;  // bytes the local side still wants to send
  bool closeWanted_ = false;

 private:
  size_t take(const struct iovec* iov, int count);
  void pumpIn();
  void pumpOut();

  core::EventLoop& loop_;
  mux::Connection* conn_;
  PeerConn& model_;
  const bool& tainted_;  // the harness's: bytes not from the model may arrive
  bool decided_;  // device role: the local connect has finished
  bool accept_;
  bool finishing_ = false;
  bool closed_ = false;
};

// One connection as the peer sees it. Models are never freed before the
// harness, so clients and checks may point at them.
struct PeerConn {
  std::shared_ptr<mux::Connection> conn;  // null once it reported its end
  std::weak_ptr<FakeClient> client;
  uint32_t key = 0;
  uint16_t sessionPort = 0;  // the session's end
  uint16_t peerPort = 0;
  uint8_t salt = 0;
  bool ended = false;  // onConnectionClosed / onConnectFailed came

  // The peer's side of the stream.
  uint32_t peerIsn = 0;
  bool haveIsn = false;
  uint32_t peerNext = 0;     // next sequence number the peer sends
  uint64_t takenByLocal = 0;  // bytes the session's local end took

  // What the session sent.
  uint32_t sessionNext = 1;  // its next data sequence number
  uint32_t sessionAck = 0;   // its last ACK and window: the peer's limit
  uint32_t sessionWindow = 0;
  bool sessionAdvertised = false;

  // The peer's last window as the session accepted it.
  uint32_t rightEdge = 0;
  bool haveEdge = false;
};

struct Config {
  mux::Role role = mux::Role::Host;
  int version = 2;
  uint32_t window = 256 << 10;
  uint16_t mps = 512;
};

class Harness : public mux::SessionObserver {
 public:
  explicit Harness(const Config& config);
  ~Harness() override;

  // ---- the peer's packets ----
  struct Segment {
    PeerConn* model = nullptr;  // null: ports given below
    uint16_t sport = 0, dport = 0;
    uint8_t flags = mux::kAck;
    uint32_t seq = 0, ack = 0;
    uint16_t window = 0;
    uint32_t payloadLen = 0;
    bool accept = true;  // a SYN: the local connect it starts succeeds
  };
  void sendSegment(const Segment& s, uint32_t split, bool noZlp);
  void sendVersion(uint32_t major);
  void sendSetup(uint8_t level);
  void sendControl(uint8_t type, const uint8_t* text, size_t len);
  void sendRaw(const uint8_t* data, size_t len);
  void handshake();

  // ---- the daemon / the phone's services ----
  PeerConn* connect(uint16_t port, uint32_t isn, uint64_t timeoutMs);
  void attach(PeerConn& m);
  void unplug();
  void shutdown();
  void setCongested(bool on);

  // Ends the turn and checks every connection.
  void endTurn();
  void advance(uint64_t ms) { driver_.advance(ms); }
  void finish();

  // The model the session will match a segment for `m`'s ports to: a newer
  // connection may have taken the ports of one that ended.
  PeerConn* current(PeerConn* m) {
    auto it = live_.find(m->key);
    return it == live_.end() ? m : it->second;
  }
  mux::DeviceSession* session() { return session_.get(); }
  std::vector<std::unique_ptr<PeerConn>>& models() { return models_; }
  const Config& config() const { return config_; }
  core::EventLoop& loop() { return loop_; }
  bool tainted_ = false;  // raw or misframed input: the peer model is unsure

  // ---- checks on what the session sends (FakeTransport::send) ----
  void checkOutgoing(const core::OutPacket& p);

  // mux::SessionObserver
  void onSessionReady(mux::DeviceSession&, int) override {}
  void onSessionLog(mux::DeviceSession&, mux::LogLevel, const std::string&) override {}
  void onSessionFailed(mux::DeviceSession& s, const Fault& why) override;
  void onIncomingConnection(mux::DeviceSession& s,
                            const std::shared_ptr<mux::Connection>& conn) override;
  void onConnected(mux::Connection&) override {}
  void onConnectFailed(mux::Connection& c, const char*, const std::string&) override;
  void onConnectionClosed(mux::Connection& c, const std::string&) override;
  void onConnectionLog(mux::Connection&, const std::string&) override {}

  // Device role: what the next SYN promises, read when the session opens it.
  struct SynPlan {
    bool valid = false;  // false: the SYN came in raw bytes
    uint32_t isn = 0;
    uint16_t window = 0;
    bool accept = true;
  } synPlan_;

 private:
  struct Sent {  // a peer segment whose fate is known once its transfer is in
    PeerConn* model;
    mux::Connection* conn;
    uint8_t flags;
    uint32_t seq, ack, len;
    uint16_t window;
  };
  void frame(uint32_t protocol, const uint8_t* body, size_t len, std::vector<uint8_t>& out);
  void deliver(const std::vector<uint8_t>& packet, uint32_t split, bool noZlp);
  void transfer(const uint8_t* data, size_t len);
  void endBatch();
  void settle();
  void ended(mux::Connection& c);
  PeerConn* modelFor(const mux::Connection& c);
  void checkConnections();
  void checkLiveness();
  void dropSession();

  Config config_;
  EngineStats stats_;
  core::EventLoop loop_;
  core::LoopDriver driver_{loop_};
  core::BufferPool pool_;
  FakeTransport transport_;
  std::shared_ptr<mux::DeviceSession> session_;
  std::vector<std::unique_ptr<PeerConn>> models_;
  std::unordered_map<uint32_t, PeerConn*> live_;  // by key, while it may send
  std::vector<Sent> sent_;
  std::vector<uint8_t*> batch_;  // this batch's transfers, freed at its end
  uint16_t peerTxSeq_ = 0;
  int outSeq_ = -1;  // the session's last v2 txSeq; -1 right after VERSION
  uint32_t receiveWindow_;
};

}  // namespace tsmuxd::fuzz
