#pragma once
// One mux link to one device, in either role. The host role is the daemon's
// side of a phone; the device role is the phone's side, used by the simulator,
// and it is as strict as a phone: ZLP framing, the advertised window, flags
// that must be ACK alone, RST with a reason text.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "mux/connection.h"
#include "core/fault.h"
#include "mux/frame.h"
#include "mux/link.h"
#include "mux/reassembler.h"
#include "core/buffers.h"
#include "core/event_loop.h"
#include "core/stats.h"

namespace tsmuxd::mux {

enum class LogLevel { Error, Warning, Info, Debug };

class DeviceSession;

class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void onSessionReady(DeviceSession& s, int version) = 0;
  virtual void onSessionLog(DeviceSession& s, LogLevel level, const std::string& text) = 0;
  // The link is unusable (hostile or broken input); drop the device.
  virtual void onSessionFailed(DeviceSession& s, const Fault& why) = 0;
  // Device role: a SYN arrived; open the local socket for `conn`.
  virtual void onIncomingConnection(DeviceSession& s, const std::shared_ptr<Connection>& conn) = 0;
  virtual void onConnected(Connection& c) = 0;
  virtual void onConnectFailed(Connection& c, const char* code, const std::string& reason) = 0;
  virtual void onConnectionClosed(Connection& c, const std::string& reason) = 0;
  virtual void onConnectionLog(Connection& c, const std::string& text) = 0;
};

// How long the peer's window may stay shut on a connection that has bytes to
// send before we give up on it (RST to the peer, the local side closed). Real
// TCP persists forever, but over USB nothing is lost, so a window that stays
// shut is a peer that has stopped reading, and a phone that wedges a service
// would otherwise hold the client's Connect open for good (usbmuxd has no such
// limit). Two minutes outlasts a phone that is merely busy (a debugger stop,
// a backup hashing files). Stalls we cause ourselves (our client not reading
// what the peer sent) never count. 0 turns the limit off.
constexpr uint64_t kZeroWindowTimeoutMs = 120000;

struct SessionOptions {
  Role role = Role::Host;
  uint32_t window = 256 << 10;  // what we advertise per connection
  uint64_t zeroWindowTimeoutMs = kZeroWindowTimeoutMs;
  int deviceVersion = 2;        // device role: the version it answers with
  bool controlLogs = true;      // device role: send CONTROL log lines as a phone does
};

class DeviceSession : public core::Deferred {
 public:
  enum class State { Init, AwaitSetup, Active, Dead };
  // Per-device totals for the stats request; plain counters, event thread.
  // Payload is counted by the connections ("to device" is host -> phone in
  // either role), whole mux packets here.
  struct Traffic {
    uint64_t toDevice = 0;
    uint64_t fromDevice = 0;
    uint64_t usbOut = 0;
    uint64_t usbIn = 0;
    uint64_t connectionsTotal = 0;
  };

  DeviceSession(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats,
                PacketLink& link, SessionObserver& observer, uint32_t handle,
                SessionOptions options);
  ~DeviceSession() override;

  uint32_t handle() const { return handle_; }
  Role role() const { return options_.role; }
  State state() const { return state_; }
  int version() const { return version_; }
  const SessionOptions& options() const { return options_; }
  core::EventLoop& loop() { return loop_; }
  core::BufferPool& pool() { return pool_; }
  EngineStats& stats() { return stats_; }
  SessionObserver& observer() { return observer_; }
  Traffic& traffic() { return traffic_; }
  const Traffic& traffic() const { return traffic_; }

  void start();  // host role: send VERSION
  std::shared_ptr<Connection> connect(uint32_t id, uint16_t port, uint64_t timeoutMs, Fault& fault);
  std::shared_ptr<Connection> find(uint32_t key) const;
  void remove(Connection& c);
  size_t connectionCount() const { return conns_.size(); }

  // The link went away: every connection flushes what it has, then closes.
  void peerGone(const std::string& reason);
  // Orderly stop: RST every connection (they reach the device before close).
  void resetAll(const std::string& reason);

  // Packet building for connections.
  size_t headerSize() const { return headerSize_; }
  core::OutPacket newPacket(size_t bodyLen);
  void sendTcp(core::OutPacket packet, const TcpHeader& th);
  void controlLog(ControlType type, const std::string& text);
  bool congested() const { return link_.congested(); }
  void queueAck(Connection& c);
  // A connection holding payload pointers into the current transfer batch.
  void queueDirect(Connection& c);
  void waitForTransport(Connection& c);

  // From the carrier (engine::DeviceLink forwards a usb::TransportHandler's
  // calls here). A transfer's bytes stay valid until onTransferBatchEnd().
  void onTransfer(const uint8_t* data, size_t len);
  void onTransferBatchEnd();
  void onTransportDrained();
  void onTransportClosed(const Fault& why);

  void runDeferred() override;

 private:
  // `inTransfer`: the bytes outlive this call, until the transfer batch ends.
  bool handlePacket(const uint8_t* p, size_t len, bool inTransfer);
  void handleMessage(const uint8_t* p, size_t len, bool inTransfer);
  void handleVersion(const uint8_t* body, size_t len);
  // Device role: a VERSION after the handshake; forget the old session.
  void restartForNewHost();
  void handleSetup(const uint8_t* body, size_t len);
  void handleControl(const uint8_t* body, size_t len);
  void handleTcp(const uint8_t* body, size_t len, bool inTransfer);
  void sendPacket(uint32_t protocol, core::OutPacket packet);
  void sendAnonymousRst(const TcpHeader& th);
  void fail(const Fault& why);
  bool allocatePort(uint16_t& port);
  bool rateAllows(uint64_t& windowStart, uint32_t& count, uint32_t limit);

  core::EventLoop& loop_;
  core::BufferPool& pool_;
  EngineStats& stats_;
  PacketLink& link_;
  SessionObserver& observer_;
  uint32_t handle_;
  SessionOptions options_;
  Traffic traffic_;

  State state_ = State::Init;
  int version_ = 0;
  size_t headerSize_ = kHeaderSizeV1;
  uint16_t txSeq_ = 0;
  uint16_t rxSeq_ = 0;
  uint16_t nextPort_ = 1;
  StreamReassembler stream_;
  MessageAssembler messages_;
  std::unordered_map<uint32_t, std::shared_ptr<Connection>> conns_;
  std::vector<bool> usedPorts_;  // host role: source ports held by live connections
  std::vector<std::weak_ptr<Connection>> ackQueue_;
  std::vector<std::shared_ptr<Connection>> directQueue_;
  std::vector<std::weak_ptr<Connection>> transportWaiters_;

  uint64_t logWindowStart_ = 0;
  uint32_t logCount_ = 0;
  uint64_t suppressedLogs_ = 0;
  uint64_t rstWindowStart_ = 0;
  uint32_t rstCount_ = 0;
};

const char* logLevelName(LogLevel level);

}  // namespace tsmuxd::mux
