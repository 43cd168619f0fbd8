#include "mux/connection.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "mux/device_session.h"

namespace tsmuxd::mux {

namespace {
std::atomic<uint32_t> gNextConnectionId{1};
// Packets filled by one read from the local socket.
constexpr size_t kMaxBurstPackets = 4;

}  // namespace

std::string hexText(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%x", v);
  return buf;
}

uint32_t allocateConnectionId() {
  uint32_t id = gNextConnectionId.fetch_add(1);
  if (id == 0) id = gNextConnectionId.fetch_add(1);
  return id;
}

Connection::Connection(DeviceSession& session, uint32_t id, Role role, uint16_t localPort,
                       uint16_t remotePort, uint32_t window)
    : session_(&session),
      observer_(session.observer()),
      loop_(session.loop()),
      stats_(&session.stats()),
      handle_(session.handle()),
      id_(id),
      role_(role),
      localPort_(localPort),
      remotePort_(remotePort),
      state_(role == Role::Host ? State::SynSent : State::SynReceived),
      inbound_(session.pool()),
      rcvWnd_(window & ~((1u << kWindowShift) - 1)),
      zeroWindowTimeoutMs_(session.options().zeroWindowTimeoutMs),
      createdUs_(core::EventLoop::nowUs()) {
  EngineStats::add(session.stats().connectionsActive, 1);
  EngineStats::add(session.stats().connectionsTotal, 1);
  ++session.traffic().connectionsTotal;
}

Connection::~Connection() {
  cancelTimer();
  EngineStats::sub(stats_->connectionsActive, 1);
}

void Connection::setIo(std::shared_ptr<ConnectionIo> io) {
  io_ = std::move(io);
  if (!io_) return;
  if (!inbound_.empty()) io_->inboundReady();
  if (state_ == State::Established) io_->sendReady();
  if (state_ == State::Draining) io_->finish();
}

size_t Connection::maxPayload() const {
  // One byte short of kMaxSendLength: a message that ends on a packet
  // boundary (49152 is 96 x 512) must be followed by a ZLP, a second USB
  // transfer per message on both ends (and a second FunctionFS request on the
  // phone's). A message one byte shorter ends with a short packet instead.
  size_t header = session_ ? session_->headerSize() : kHeaderSizeV2;
  return kMaxSendLength - 1 - header - kTcpHeaderSize;
}

void Connection::cancelTimer() {
  if (timer_) loop_.cancelTimer(timer_);
  timer_ = 0;
  stopZeroWindowWatch();
}

void Connection::transmit(core::OutPacket packet, uint8_t flags, uint32_t seq, size_t payloadLen) {
  if (!session_) return;
  TcpHeader th;
  th.sport = localPort_;
  th.dport = remotePort_;
  th.seq = seq;
  th.ack = state_ == State::SynSent ? 0 : receiveAck();
  th.flags = flags;
  th.window = scaleWindow(rcvWnd_);
  lastAckSent_ = th.ack;
  lastWndSent_ = unscaleWindow(th.window);
  packet.resize(session_->headerSize() + kTcpHeaderSize + payloadLen);
  if ((flags & ~kAck) == 0 && payloadLen == 0) EngineStats::add(stats_->acksOut, 1);
  session_->sendTcp(std::move(packet), th);
}

void Connection::sendControl(uint8_t flags, const std::string& text) {
  if (!session_) return;
  core::OutPacket p = session_->newPacket(kTcpHeaderSize + text.size());
  std::memcpy(p.data() + session_->headerSize() + kTcpHeaderSize, text.data(), text.size());
  transmit(std::move(p), flags, sndNxt_, text.size());
}

// ---- handshake ----

// ---- input ----

void Connection::onSegment(const TcpHeader& th, const uint8_t* payload, size_t len,
                           bool inTransfer) {
  // A RST may carry the peer's reason as text.
  auto reason = [payload, len](const char* prefix, const char* fallback) {
    std::string text(reinterpret_cast<const char*>(payload), len);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
    return text.empty() ? std::string(fallback) : std::string(prefix) + text;
  };
  switch (state_) {
    case State::SynSent:
      if (th.flags & kRst) {
        closeFromHandshake("ECONNREFUSED", reason("", "connection refused by the device"));
        return;
      }
      if (th.flags != (kSyn | kAck) || th.ack != 1) {
        sendControl(kRst);
        closeFromHandshake("ECONNREFUSED", "bad handshake reply (flags " + hexText(th.flags) +
                                               ", ack " + std::to_string(th.ack) + ")");
        return;
      }
      cancelTimer();
      rcvNxt_ = th.seq + 1;
      sndUna_ = th.ack;
      sndWnd_ = unscaleWindow(th.window);
      state_ = State::Established;
      sendControl(kAck);
      observer_.onConnected(*this);
      if (io_) io_->sendReady();
      return;
    case State::SynReceived:
      // The local socket is still opening; only an abort makes sense here.
      if (th.flags & kRst) {
        closeFromHandshake("ECONNRESET", "the host aborted the connection");
      } else {
        violation("packet before the handshake finished");
      }
      return;
    case State::SynAckSent:
      if (th.flags & kRst) break;
      if (th.flags != kAck || th.ack != 1) {
        violation("bad handshake ACK (flags " + hexText(th.flags) + ", ack " +
                  std::to_string(th.ack) + ")");
        return;
      }
      state_ = State::Established;
      if (io_) io_->sendReady();
      break;
    case State::Established: break;
    case State::Draining:
    case State::Closed: return;  // we already reset it; the peer will catch up
  }

  if (th.flags & kRst) {
    drain(reason("reset by peer: ", "reset by peer"));
    return;
  }
  if (th.flags != kAck) {
    violation("flags " + hexText(th.flags) + " on an established connection (only ACK is allowed)");
    return;
  }
  if (th.seq != rcvNxt_) {
    violation("sequence " + std::to_string(th.seq) + " where " + std::to_string(rcvNxt_) +
              " was expected");
    return;
  }
  if (th.ack - sndUna_ > sndNxt_ - sndUna_) {
    violation("ACK " + std::to_string(th.ack) + " of data never sent (next is " +
              std::to_string(sndNxt_) + ")");
    return;
  }
  if (len > 0 && int32_t((th.seq + uint32_t(len)) - (lastAckSent_ + lastWndSent_)) > 0) {
    violation(role_ == Role::Device
                  ? "received " + std::to_string(len) + " bytes past the window; the device suffers from amnesia"
                  : "the device sent " + std::to_string(len) + " bytes past our window");
    return;
  }
  sndUna_ = th.ack;
  sndWnd_ = unscaleWindow(th.window);
  if (rttStartUs_ && int32_t(th.ack - rttSeq_) >= 0) finishRttSample();
  if (len > 0) deliver(payload, len, inTransfer);
  if (wantSend_ && state_ == State::Established && int32_t(sndUna_ + sndWnd_ - sndNxt_) > 0) {
    // The window opened: the sender tries again. Its window, not sendable(),
    // decides: sendable() is also 0 under the transport's back-pressure, and a
    // sender left with wantSend_ then was never woken again (a stall found by
    // the pseudo_tcp fuzzer). If the transport is congested, the sender's
    // try ends in blocked(), which queues it for the drain.
    wantSend_ = false;
    if (io_) io_->sendReady();
  }
  if (int32_t(sndUna_ + sndWnd_ - sndNxt_) > 0) windowOpened();
}

void Connection::deliver(const uint8_t* payload, size_t len, bool inTransfer) {
  rcvNxt_ += uint32_t(len);
  bytesIn_ += len;
  EngineStats::add(role_ == Role::Host ? stats_->payloadBytesFromDevice
                                       : stats_->payloadBytesToDevice,
                   len);
  if (session_) {
    (role_ == Role::Host ? session_->traffic().fromDevice : session_->traffic().toDevice) += len;
  }
  if (inTransfer && io_ && inbound_.empty() && session_) {
    // Hold the payload where the transport put it; flushDirect() writes the
    // whole batch at once.
    if (direct_.empty()) session_->queueDirect(*this);
    direct_.push_back(iovec{const_cast<uint8_t*>(payload), len});
    directBytes_ += len;
    return;
  }
  bool wasEmpty = inbound_.empty();
  inbound_.append(payload, len);
  if (wasEmpty && io_) io_->inboundReady();
  noteAckDue();
}

void Connection::flushDirect() {
  if (direct_.empty()) return;
  size_t taken = 0;
  if (io_ && state_ == State::Established) taken = io_->offer(direct_.data(), int(direct_.size()));
  for (const iovec& v : direct_) {
    size_t skip = std::min(taken, v.iov_len);
    taken -= skip;
    if (skip < v.iov_len) inbound_.append(static_cast<uint8_t*>(v.iov_base) + skip, v.iov_len - skip);
  }
  direct_.clear();
  directBytes_ = 0;
  if (!inbound_.empty() && io_) io_->inboundReady();
  noteAckDue();
}

void Connection::spillDirect() {
  for (const iovec& v : direct_) inbound_.append(static_cast<uint8_t*>(v.iov_base), v.iov_len);
  direct_.clear();
  directBytes_ = 0;
}

void Connection::noteAckDue() {
  if (receiveAck() != lastAckSent_ && session_ && state_ == State::Established) {
    session_->queueAck(*this);
  }
}

void Connection::consumed(size_t n) {
  inbound_.consume(n);
  noteAckDue();
}

void Connection::flushAck() {
  if (state_ == State::Established && receiveAck() != lastAckSent_) sendControl(kAck);
}

// ---- output ----

size_t Connection::sendable() const {
  if (state_ != State::Established || !session_ || session_->congested()) return 0;
  int32_t room = int32_t(sndUna_ + sndWnd_ - sndNxt_);
  if (room <= 0) return 0;
  return std::min(size_t(room), kMaxBurstPackets * maxPayload());
}

void Connection::blocked() {
  if (state_ != State::Established || !session_) return;
  if (session_->congested()) {
    session_->waitForTransport(*this);
  } else {
    wantSend_ = true;
    ++stalls_;
    EngineStats::add(stats_->windowStalls, 1);
    watchZeroWindow();
  }
}

void Connection::transportDrained() {
  if (state_ == State::Established && io_) io_->sendReady();
}

size_t Connection::payloadOffset() const {
  return (session_ ? session_->headerSize() : kHeaderSizeV2) + kTcpHeaderSize;
}

core::OutPacket Connection::newDataPacket(size_t payloadCapacity) {
  return session_->newPacket(kTcpHeaderSize + payloadCapacity);
}

void Connection::sendData(core::OutPacket packet, size_t payloadLen) {
  uint32_t seq = sndNxt_;
  sndNxt_ += uint32_t(payloadLen);
  bytesOut_ += payloadLen;
  EngineStats::add(role_ == Role::Host ? stats_->payloadBytesToDevice
                                       : stats_->payloadBytesFromDevice,
                   payloadLen);
  if (session_) {
    (role_ == Role::Host ? session_->traffic().toDevice : session_->traffic().fromDevice) +=
        payloadLen;
  }
  if (!rttStartUs_ && payloadLen > 0) {
    rttStartUs_ = core::EventLoop::nowUs();
    rttSeq_ = sndNxt_;
  }
  transmit(std::move(packet), kAck, seq, payloadLen);
}

// ---- teardown ----

}  // namespace tsmuxd::mux
