#include "tunnel/tunnel.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

extern "C" {
#include "lwip/ip6.h"
#include "lwip/tcp.h"
}

#include "core/capture_tap.h"
#include "tunnel/ipv6_guard.h"
#include "tunnel/limits.h"
#include "tunnel/stream.h"

namespace tsmuxd::tunnel {

namespace {

// Ciphertext a peer may send before its handshake frame is answered.
constexpr size_t kMaxEarlyCiphertext = 1u << 20;

}  // namespace

const char* Tunnel::stateName(State s) {
  switch (s) {
    case Tunnel::State::Tls: return "TLS handshake";
    case Tunnel::State::AwaitFrame: return "waiting for the CDTunnel frame";
    case Tunnel::State::AwaitConfig: return "waiting for its configuration";
    case Tunnel::State::Running: return "running";
    case Tunnel::State::Closed: return "closed";
  }
  return "?";
}

Tunnel::Tunnel(core::EventLoop& loop, Stack& stack, TunnelObserver& observer, Role role, uint32_t id,
               uint32_t handle, std::unique_ptr<TlsChannel> tls, std::string request)
    : loop_(loop), stack_(stack), observer_(observer), role_(role), id_(id), handle_(handle),
      tls_(std::move(tls)), request_(std::move(request)), random_(std::random_device{}()) {
  scratch_.resize(kMaxIpv6Packet);
  // The session's secrets go to a capture, if one runs, before the records
  // they protect (SSL_do_handshake calls this before its output is sent).
  tls_->setKeylog([this](const char* line) {
    if (core::CaptureTap* tap = loop_.captureTap()) tap->secret(line, std::strlen(line));
  });
}

void Tunnel::capture(core::CaptureDirection hostToDevice, const uint8_t* packet, size_t len) {
  if (core::CaptureTap* tap = loop_.captureTap()) {
    core::CaptureDirection direction = role_ == Role::Host ? hostToDevice
                                       : hostToDevice == core::CaptureDirection::ToDevice ? core::CaptureDirection::FromDevice
                                                                                         : core::CaptureDirection::ToDevice;
    tap->tunnelPacket(id_, handle_, direction, packet, len);
  }
}

Tunnel::~Tunnel() {
  if (handshakeTimer_) loop_.cancelTimer(handshakeTimer_);
  stopNetif();
  closeTun();
}

void Tunnel::start(mux::Connection* conn) {
  conn_ = conn;
  handshakeTimer_ = loop_.addTimer(kHandshakeTimeoutMs, [this] {
    handshakeTimer_ = 0;
    if (state_ != State::Running && state_ != State::Closed) {
      fail("ETIMEDOUT", "the tunnel handshake did not finish within " + std::to_string(kHandshakeTimeoutMs) +
                            " ms (" + stateName(state_) + ")");
    }
  });
  if (role_ == Role::Device) {
    needAccept_ = true;
    loop_.defer(this);
    return;
  }
  // The ClientHello.
  if (tls_->handshake() == TlsChannel::Progress::Failed) {
    fail("ETLS", tls_->error());
    return;
  }
  flushTls();
}

size_t Tunnel::offer(const struct iovec* iov, int count) {
  if (state_ == State::Closed) return 0;
  // Straight into TLS's input (a copy into its memory BIO, no more): the
  // records are read at the end of the turn (processInput()).
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    tls_->feed(static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
    total += iov[i].iov_len;
  }
  loop_.defer(this);
  return total;
}

void Tunnel::runDeferred() {
  if (state_ == State::Closed) return;
  if (needAccept_) {
    needAccept_ = false;
    conn_->localConnected();  // SYN|ACK: the phone's service took the connection
  }
  if (!deferredFailure_.empty()) {
    fail("ETLS", deferredFailure_);
    return;
  }
  packetsThisTurn_ = 0;
  processInput();
  if (state_ == State::Closed) return;
  sendQueued();
  flushTls();
  if (tunBacklog_) readTun();
  stack_.poke();
}

void Tunnel::processInput() {
  takeInbound();
  if (state_ == State::Tls) {
    TlsChannel::Progress progress = tls_->handshake();
    flushTls();
    if (progress == TlsChannel::Progress::Failed) return fail("ETLS", "TLS: " + tls_->error());
    if (progress == TlsChannel::Progress::Handshaking) return;
    state_ = State::AwaitFrame;
    log("debug", "tunnel " + std::to_string(id_) + ": " + tls_->version() + " " + tls_->cipher());
    if (role_ == Role::Host) {
      std::vector<uint8_t> frame;
      std::string error;
      if (!encodeCdTunnelFrame(request_, frame, error)) return fail("EINVAL", error);
      if (!tls_->write(frame.data(), frame.size())) return fail("ETLS", tls_->error());
      flushTls();
    }
  }
  if (state_ == State::AwaitFrame) takeFrame();
  if (state_ == State::AwaitConfig) {
    if (tls_->pendingInput() > kMaxEarlyCiphertext) {
      fail("EPROTO", "the peer sent " + std::to_string(tls_->pendingInput()) +
                         " bytes before its handshake was answered");
    }
    return;
  }
  if (state_ != State::Running) return;
  auto sink = [this](const uint8_t* packet, size_t len) { inputPacket(packet, len); };
  if (!framer_.drain(sink)) return fail("EPROTO", framer_.error());
  for (;;) {
    size_t room = 0;
    uint8_t* at = framer_.writable(room);
    long n = tls_->read(at, room);
    if (n < 0) return fail("ETLS", "TLS: " + tls_->error());
    if (n == 0) break;
    framer_.commit(size_t(n));
    if (!framer_.drain(sink)) return fail("EPROTO", framer_.error());
    if (state_ == State::Closed) return;
  }
}

// Ciphertext the connection queued instead of offering it (a payload that
// did not arrive in a transfer batch, or one behind bytes already queued).
// It is always newer than what offer() fed TLS: the connection offers only
// while its queue is empty. Left there, it would hold the mux window shut
// and the TLS stream would wait for it forever.
void Tunnel::takeInbound() {
  if (!conn_) return;
  core::ByteQueue& queue = conn_->inbound();
  while (!queue.empty()) {
    struct iovec iov[16];
    int count = queue.gather(iov, 16);
    size_t took = 0;
    for (int i = 0; i < count; ++i) {
      tls_->feed(static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      took += iov[i].iov_len;
    }
    if (took == 0) break;
    conn_->consumed(took);
  }
}

// The handshake frame; what follows it in the same read goes to the framer.
void Tunnel::takeFrame() {
  uint8_t buffer[4096];
  for (;;) {
    long n = tls_->read(buffer, sizeof buffer);
    if (n < 0) return fail("ETLS", "TLS: " + tls_->error());
    if (n == 0) return;
    size_t used = 0;
    CdTunnelFrameReader::Status status = frame_.feed(buffer, size_t(n), used);
    if (status == CdTunnelFrameReader::Status::Failed) return fail("EPROTO", frame_.error());
    if (status == CdTunnelFrameReader::Status::Done) {
      size_t rest = size_t(n) - used;
      size_t room = 0;
      uint8_t* at = framer_.writable(room);
      std::memcpy(at, buffer + used, rest);  // rest < 4096 <= room
      framer_.commit(rest);
      state_ = State::AwaitConfig;
      observer_.onTunnelHandshake(*this, frame_.body());
      return;
    }
  }
}

bool Tunnel::dropInbound(size_t len) {
  if (role_ != Role::Device) return false;
  if (config_.lossRate > 0 && unit_(random_) < config_.lossRate) {
    ++counters_.droppedLoss;
    return true;
  }
  // A phone's forwarder passes an oversized packet alone but drops it under
  // sustained load (pymobiledevice3 c3cea12): here, when it is not the first
  // packet of its turn.
  if (config_.dropOversize && len > config_.dropOversize && packetsThisTurn_ > 1) {
    ++counters_.droppedOversize;
    return true;
  }
  return false;
}

bool Tunnel::dropOutbound() {
  if (role_ != Role::Device || config_.lossRate <= 0) return false;
  if (unit_(random_) < config_.lossRate) {
    ++counters_.droppedLoss;
    return true;
  }
  return false;
}

void Tunnel::inputPacket(const uint8_t* packet, size_t len) {
  ++packetsThisTurn_;
  if (dropInbound(len)) return;
  if (!headersFit(packet, len)) {
    ++counters_.droppedMalformed;
    return;
  }
  ++counters_.packetsIn;
  counters_.bytesIn += len;
  capture(core::CaptureDirection::FromDevice, packet, len);
  if (tunFd_ >= 0 && kernelOwns(packet, len)) return writeTun(packet, len);
  // A packet over 65535 bytes (a payload within 40 bytes of the u16 limit)
  // does not fit lwIP's u16 pbuf lengths; no MTU we accept allows one.
  struct pbuf* p = len <= 0xFFFF ? pbuf_alloc(PBUF_RAW, u16_t(len), PBUF_RAM) : nullptr;
  if (!p) {
    ++counters_.droppedQueueFull;
    return;
  }
  std::memcpy(p->payload, packet, len);
  ip6_input(p, &netif_);  // takes the pbuf in every case
}

err_t Tunnel::netifInit(struct netif* n) {
  n->name[0] = 't';
  n->name[1] = 'n';
  n->output_ip6 = netifOutput;
  n->flags = 0;  // point to point: no ARP, no ND, no multicast
  return ERR_OK;
}

err_t Tunnel::netifOutput(struct netif* n, struct pbuf* p, const ip6_addr_t*) {
  return static_cast<Tunnel*>(n->state)->output(p);
}

// One packet from lwIP: one SSL_write, so one TLS record, never a record
// holding several packets (a phone's forwarder stalls on those: the
// "concatenated burst" of pymobiledevice3 c3cea12). The records of a turn
// then leave together, up to a mux packet each (flushTls()): the mux is a
// byte stream to the phone's CoreDeviceProxy process, which sees records,
// not mux packets, as its kernel delivers the stream to its socket. A
// packet that finds the queue full is dropped, as a NIC drops it, and TCP
// sends it again.
err_t Tunnel::output(struct pbuf* p) {
  if (state_ != State::Running || closing_ || !conn_) return ERR_OK;
  if (dropOutbound()) return ERR_OK;
  if (queuedBytes_ + tls_->pendingOutput() > kMaxQueuedCiphertext) {
    ++counters_.droppedQueueFull;
    return ERR_OK;
  }
  size_t len = p->tot_len;
  // lwIP never fragments (LWIP_IPV6_FRAG 0) and does not check the MTU on
  // output: an echo reply to an oversized echo request would go out as
  // large as the request (the lwip_input fuzzer). Nothing over the MTU leaves.
  if (len > config_.mtu) {
    ++counters_.droppedOverMtu;
    return ERR_OK;
  }
  const uint8_t* data;
  if (p->next == nullptr) {
    data = static_cast<const uint8_t*>(p->payload);
  } else {
    pbuf_copy_partial(p, scratch_.data(), u16_t(len), 0);
    data = scratch_.data();
  }
  sendPacket(data, len);
  return ERR_OK;
}

void Tunnel::sendPacket(const uint8_t* data, size_t len) {
  if (!tls_->write(data, len)) {
    // Not here: we may be inside lwIP. The failure is handled at the end of the turn.
    deferredFailure_ = "TLS: " + tls_->error();
    loop_.defer(this);
    return;
  }
  ++counters_.packetsOut;
  counters_.bytesOut += len;
  capture(core::CaptureDirection::ToDevice, data, len);
  loop_.defer(this);  // flushTls() at the end of the turn
}

// The TLS output so far, in mux packets of up to maxPayload() while the
// peer's window has room; the rest waits in the queue. Whatever is left
// waiting must have asked the connection for sendReady() (sendQueued()
// does, through blocked()): a pure ACK that opens the window wakes nobody
// else, and with both directions waiting on each other the tunnel would
// stall for good.
void Tunnel::flushTls() {
  size_t pending;
  while (conn_ && (pending = tls_->pendingOutput()) > 0) {
    size_t n = std::min(pending, conn_->maxPayload());
    if (queue_.empty() && conn_->state() == mux::Connection::State::Established && conn_->sendable() >= n) {
      core::OutPacket packet = conn_->newDataPacket(n);
      size_t got = tls_->takeOutput(packet.data() + conn_->payloadOffset(), n);
      conn_->sendData(std::move(packet), got);
      continue;
    }
    std::vector<uint8_t> bytes(pending);
    bytes.resize(tls_->takeOutput(bytes.data(), pending));
    queuedBytes_ += bytes.size();
    queue_.push_back(std::move(bytes));
  }
  sendQueued();
}

void Tunnel::sendQueued() {
  while (!queue_.empty() && conn_ && conn_->state() == mux::Connection::State::Established) {
    std::vector<uint8_t>& bytes = queue_.front();
    size_t want = std::min(bytes.size() - queueOffset_, conn_->maxPayload());
    size_t room = conn_->sendable();
    // Wait for the window rather than send slivers; blocked() asks for
    // sendReady() on the next segment that leaves room.
    if (room < std::min(want, kMinTunnelSend)) {
      conn_->blocked();
      return;
    }
    size_t n = std::min(want, room);
    core::OutPacket packet = conn_->newDataPacket(n);
    std::memcpy(packet.data() + conn_->payloadOffset(), bytes.data() + queueOffset_, n);
    conn_->sendData(std::move(packet), n);
    queuedBytes_ -= n;
    queueOffset_ += n;
    if (queueOffset_ == bytes.size()) {
      queue_.pop_front();
      queueOffset_ = 0;
    }
  }
}

void Tunnel::fail(const char* code, const std::string& reason) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  closing_ = true;
  if (handshakeTimer_) {
    loop_.cancelTimer(handshakeTimer_);
    handshakeTimer_ = 0;
  }
  // Streams let go of their pcbs first (RSTs go nowhere now), then drain
  // what they hold to their sockets; the netif can go after that.
  std::vector<std::shared_ptr<Stream>> streams;
  for (auto& [id, stream] : streams_) streams.push_back(stream);
  for (auto& stream : streams) stream->tunnelGone("the tunnel closed: " + reason);
  stopNetif();
  closeTun();
  queue_.clear();
  queuedBytes_ = 0;
  queueOffset_ = 0;
  mux::Connection* conn = conn_;
  conn_ = nullptr;
  if (conn && conn->state() != mux::Connection::State::Closed) conn->reset("tunnel: " + reason);
  observer_.onTunnelClosed(*this, code, reason);
}

void Tunnel::close(const char* code, const std::string& reason, bool drainStreams) {
  if (!drainStreams) {
    std::vector<std::shared_ptr<Stream>> streams;
    for (auto& [id, stream] : streams_) streams.push_back(stream);
    for (auto& stream : streams) stream->abort("the tunnel closed: " + reason);
  }
  fail(code, reason);
}

void Tunnel::finish() {
  mux::Connection* conn = conn_;
  conn_ = nullptr;
  fail("ECONNRESET", "the device ended the CoreDeviceProxy connection");
  if (conn) conn->ioFinished();
}

void Tunnel::abort() {
  conn_ = nullptr;
  fail("ECONNRESET", "the CoreDeviceProxy connection was reset");
}

}  // namespace tsmuxd::tunnel
