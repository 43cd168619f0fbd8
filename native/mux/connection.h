#pragma once
// One pseudo-TCP connection over the mux. It is TCP's handshake and its
// SEQ/ACK/window bookkeeping and nothing else: no retransmission, no
// reordering, no FIN; RST is the only teardown. Two rules matter most:
//   - we never send past the peer's window, and
//   - we ACK only what the local socket has taken, so a reader that stalls
//     stalls the peer instead of growing our memory.
#include <sys/uio.h>

#include <cstdint>
#include <vector>
#include <memory>
#include <string>

#include "mux/frame.h"
#include "core/buffers.h"
#include "core/event_loop.h"
#include "mux/connection_snapshot.h"
#include "core/stats.h"

namespace tsmuxd::mux {

class DeviceSession;
class SessionObserver;

enum class Role { Host, Device };

// Connection ids are unique in the process and never 0.
uint32_t allocateConnectionId();

// The local end of a connection: a client socket in the daemon, a service
// socket in the simulated phone (native/pipe/fd_pump.h).
/** "0x1f": flags and connection ids as log lines show them. */
std::string hexText(uint32_t v);

class ConnectionIo {
 public:
  virtual ~ConnectionIo() = default;
  // Writes what the local side takes right now; returns the count.
  virtual size_t offer(const struct iovec* iov, int count) = 0;
  // Bytes wait in the connection's inbound queue.
  virtual void inboundReady() = 0;
  // The peer's window or the transport opened: read local bytes again.
  virtual void sendReady() = 0;
  // The peer is gone: flush the inbound queue, close, then ioFinished().
  virtual void finish() = 0;
  // Close the local side at once.
  virtual void abort() = 0;
  // The local side has bytes waiting that the peer's shut window holds back.
  virtual bool outputWaiting() { return true; }
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State {
    SynSent,      // host: SYN out, waiting for SYN|ACK
    SynReceived,  // device: SYN in, opening the local socket
    SynAckSent,   // device: SYN|ACK out, waiting for the ACK
    Established,
    Draining,     // the peer is gone; flushing what it sent to the local side
    Closed,
  };

  Connection(DeviceSession& session, uint32_t id, Role role, uint16_t localPort,
             uint16_t remotePort, uint32_t window);
  ~Connection();

  uint32_t id() const { return id_; }
  uint32_t handle() const { return handle_; }  // the device's, for events
  Role role() const { return role_; }
  State state() const { return state_; }
  uint16_t localPort() const { return localPort_; }
  uint16_t remotePort() const { return remotePort_; }
  uint32_t key() const { return (uint32_t(localPort_) << 16) | remotePort_; }
  // Null once the connection has left its session (draining, or unplugged).
  DeviceSession* session() const { return session_; }

  void setIo(std::shared_ptr<ConnectionIo> io);
  bool hasIo() const { return io_ != nullptr; }

  // Handshake.
  void startConnect(uint64_t timeoutMs);  // host: send SYN
  void acceptSyn(const TcpHeader& syn);   // device: remember the peer's ISN
  void localConnected();                  // device: local socket is up -> SYN|ACK
  void localConnectFailed(int error);     // device: RST, phone-style log line

  // A TCP packet for this connection. `inTransfer`: the payload stays valid
  // until the transfer batch ends, so it may be written from where it lies.
  void onSegment(const TcpHeader& th, const uint8_t* payload, size_t len, bool inTransfer);

  // Local -> peer. sendable() is the room in the peer's window (capped at a
  // few packets); when it is 0 the local side calls blocked() and waits for
  // ConnectionIo::sendReady(). One packet carries at most maxPayload().
  size_t sendable() const;
  size_t maxPayload() const;
  void blocked();
  core::OutPacket newDataPacket(size_t payloadCapacity);
  size_t payloadOffset() const;
  void sendData(core::OutPacket packet, size_t payloadLen);

  // Peer -> local.
  core::ByteQueue& inbound() { return inbound_; }
  void consumed(size_t n);

  // Teardown. `reset` sends RST and closes the local side now; `localEnded`
  // is the local side's EOF or error; `peerGone` is an unplug.
  void reset(const std::string& reason);
  void localEnded(const std::string& reason);
  void peerGone(const std::string& reason);
  void ioFinished();

  // Called by the session at the end of a turn to send a coalesced ACK.
  void flushAck();
  // Called at the end of a transfer batch: writes the payloads received in it
  // with one call, and copies what the local side did not take.
  void flushDirect();
  void transportDrained();

  uint64_t bytesIn() const { return bytesIn_; }
  uint64_t bytesOut() const { return bytesOut_; }
  // What the stats request shows of this connection (event thread).
  void snapshot(ConnectionSnapshot& out, uint64_t nowUs) const;

 private:
  uint32_t receiveAck() const { return rcvNxt_ - uint32_t(inbound_.size() + directBytes_); }
  void spillDirect();
  void sendControl(uint8_t flags, const std::string& text = std::string());
  void violation(const std::string& what);
  void drain(const std::string& reason);
  void finishClose(const std::string& reason);
  void cancelTimer();
  void transmit(core::OutPacket packet, uint8_t flags, uint32_t seq, size_t payloadLen);
  void deliver(const uint8_t* payload, size_t len, bool inTransfer);
  void noteAckDue();
  // The zero-window limit (connection_window.cc): the clock starts when the
  // peer's window stops us and resets when it opens; the timer is only
  // cancelled when the connection ends, so a busy transfer that stalls on
  // every ACK costs a clock read, not a timer, per stall.
  void watchZeroWindow();
  void windowOpened() { zeroWindowSinceMs_ = 0; }
  void stopZeroWindowWatch();
  void armZeroWindowTimer(uint64_t delayMs);
  void zeroWindowExpired();
  void connectTimedOut();
  void closeFromHandshake(const char* code, const std::string& reason);
  // The ACK covering the timed byte arrived.
  void finishRttSample();

  DeviceSession* session_;  // null once the link is gone
  SessionObserver& observer_;
  core::EventLoop& loop_;
  EngineStats* stats_;
  uint32_t handle_;
  uint32_t id_;
  Role role_;
  uint16_t localPort_;
  uint16_t remotePort_;
  State state_;
  std::shared_ptr<ConnectionIo> io_;
  core::ByteQueue inbound_;
  // Payloads of the current transfer batch not yet written (pointers into the
  // transport's buffers, valid until the batch ends).
  std::vector<struct iovec> direct_;
  size_t directBytes_ = 0;

  uint32_t sndNxt_ = 0;     // next sequence number we send
  uint32_t sndUna_ = 0;     // oldest byte the peer has not ACKed
  uint32_t sndWnd_ = 0;     // the peer's window, in bytes
  uint32_t rcvNxt_ = 0;     // next sequence number expected from the peer
  uint32_t rcvWnd_;         // the window we advertise
  uint32_t lastAckSent_ = 0;
  uint32_t lastWndSent_ = 0;
  bool ackQueued_ = false;
  bool wantSend_ = false;   // the local side has bytes but the window or transport is shut
  core::EventLoop::TimerId timer_ = 0;
  core::EventLoop::TimerId zeroWindowTimer_ = 0;
  uint64_t zeroWindowSinceMs_ = 0;  // 0: the peer's window is open
  uint64_t zeroWindowTimeoutMs_;
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
  uint64_t stalls_ = 0;
  uint64_t createdUs_;
  // RTT as classic TCP times it: one sample at a time, from the data packet
  // that starts it to the first ACK covering it, so the clock is read once
  // per round trip rather than per packet. The peer ACKs what its local side
  // has read, so this is the latency an application sees, not the wire's.
  uint64_t rttStartUs_ = 0;  // 0: no sample running
  uint32_t rttSeq_ = 0;      // the ACK that ends the running sample
  double srttUs_ = 0;
  uint32_t rttSamples_ = 0;
  std::string closeReason_;
};

}  // namespace tsmuxd::mux
