#include "tunnel/tunnel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

extern "C" {
#include "lwip/ip6.h"
#include "lwip/tcp.h"
}

#include "tunnel/limits.h"
#include "tunnel/stream.h"

namespace tsmuxd::tunnel {

namespace {

// Ciphertext a peer may send before its handshake frame is answered.
constexpr size_t kMaxEarlyCiphertext = 1u << 20;

const char* stateName(Tunnel::State s) {
  switch (s) {
    case Tunnel::State::Tls: return "TLS handshake";
    case Tunnel::State::AwaitFrame: return "waiting for the CDTunnel frame";
    case Tunnel::State::AwaitConfig: return "waiting for its configuration";
    case Tunnel::State::Running: return "running";
    case Tunnel::State::Closed: return "closed";
  }
  return "?";
}

}  // namespace

Tunnel::Tunnel(core::EventLoop& loop, Stack& stack, TunnelObserver& observer, Role role, uint32_t id,
               uint32_t handle, std::unique_ptr<TlsChannel> tls, std::string request)
    : loop_(loop), stack_(stack), observer_(observer), role_(role), id_(id), handle_(handle),
      tls_(std::move(tls)), request_(std::move(request)), random_(std::random_device{}()) {
  scratch_.resize(kMaxIpv6Packet);
}

Tunnel::~Tunnel() {
  if (handshakeTimer_) loop_.cancelTimer(handshakeTimer_);
  stopNetif();
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
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    const uint8_t* p = static_cast<const uint8_t*>(iov[i].iov_base);
    cipherIn_.insert(cipherIn_.end(), p, p + iov[i].iov_len);
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
}

void Tunnel::processInput() {
  if (!cipherIn_.empty()) {
    tls_->feed(cipherIn_.data(), cipherIn_.size());
    cipherIn_.clear();
    if (cipherIn_.capacity() > (1u << 20)) std::vector<uint8_t>().swap(cipherIn_);
  }
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
  ++counters_.packetsIn;
  counters_.bytesIn += len;
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

// One packet from lwIP: one TLS record, one mux packet (never merged with
// another: a phone's forwarder stalls on merged bursts, pymobiledevice3
// c3cea12). A packet that finds the queue full is dropped, as a NIC drops
// it, and TCP sends it again.
err_t Tunnel::output(struct pbuf* p) {
  if (state_ != State::Running || closing_ || !conn_) return ERR_OK;
  if (dropOutbound()) return ERR_OK;
  if (queuedBytes_ > kMaxQueuedCiphertext) {
    ++counters_.droppedQueueFull;
    return ERR_OK;
  }
  size_t len = p->tot_len;
  const uint8_t* data;
  if (p->next == nullptr) {
    data = static_cast<const uint8_t*>(p->payload);
  } else {
    pbuf_copy_partial(p, scratch_.data(), u16_t(len), 0);
    data = scratch_.data();
  }
  if (!tls_->write(data, len)) {
    // Not here: we are inside lwIP. The failure is handled at the end of the turn.
    deferredFailure_ = "TLS: " + tls_->error();
    loop_.defer(this);
    return ERR_OK;
  }
  ++counters_.packetsOut;
  counters_.bytesOut += len;
  flushTls();
  return ERR_OK;
}

void Tunnel::flushTls() {
  size_t pending;
  while (conn_ && (pending = tls_->pendingOutput()) > 0) {
    if (queue_.empty() && conn_->state() == mux::Connection::State::Established &&
        pending <= conn_->maxPayload() && conn_->sendable() >= pending) {
      core::OutPacket packet = conn_->newDataPacket(pending);
      size_t n = tls_->takeOutput(packet.data() + conn_->payloadOffset(), pending);
      conn_->sendData(std::move(packet), n);
      continue;
    }
    std::vector<uint8_t> record(pending);
    record.resize(tls_->takeOutput(record.data(), pending));
    queuedBytes_ += record.size();
    queue_.push_back(std::move(record));
    loop_.defer(this);
  }
}

// Whole records while the window has room for them (a record is split only
// if it is larger than one mux packet).
void Tunnel::sendQueued() {
  while (!queue_.empty() && conn_ && conn_->state() == mux::Connection::State::Established) {
    std::vector<uint8_t>& record = queue_.front();
    size_t room = conn_->sendable();
    size_t n = std::min(record.size(), conn_->maxPayload());
    if (room < n) {
      conn_->blocked();
      return;
    }
    core::OutPacket packet = conn_->newDataPacket(n);
    std::memcpy(packet.data() + conn_->payloadOffset(), record.data(), n);
    conn_->sendData(std::move(packet), n);
    queuedBytes_ -= n;
    if (n == record.size()) queue_.pop_front();
    else record.erase(record.begin(), record.begin() + long(n));
  }
}

bool Tunnel::configure(TunnelConfig config, std::string& error) {
  if (state_ != State::AwaitConfig) {
    error = std::string("tunnel ") + std::to_string(id_) + " is not waiting for its configuration (" +
            stateName(state_) + ")";
    return false;
  }
  if (config.mtu < kMinMtu || config.mtu > kMaxMtu) {
    error = "MTU " + std::to_string(config.mtu) + " is outside [1280, 65535]";
    return false;
  }
  uint32_t mssCap = config.mtu - kTcpIpv6Overhead;
  if (config.sendMss == 0) config.sendMss = role_ == Role::Host ? kDefaultSendMss : uint16_t(std::min<uint32_t>(mssCap, TCP_MSS));
  if (config.sendMss < 536 || config.sendMss > mssCap) {
    error = "send MSS " + std::to_string(config.sendMss) + " is outside [536, MTU - 60 = " + std::to_string(mssCap) + "]";
    return false;
  }
  config_ = std::move(config);
  if (role_ == Role::Device) {
    std::vector<uint8_t> frame;
    if (!encodeCdTunnelFrame(config_.response, frame, error)) return false;
    if (!tls_->write(frame.data(), frame.size())) {
      error = "TLS: " + tls_->error();
      return false;
    }
    flushTls();
  }
  if (!netif_add(&netif_, this, netifInit, ip6_input)) {
    error = "lwIP refused a new interface";
    return false;
  }
  netif_.mtu = u16_t(std::min<uint32_t>(config_.mtu, 0xFFFF));
#if LWIP_ND6_ALLOW_RA_UPDATES
  netif_.mtu6 = netif_.mtu;
#endif
  netifUp_ = true;
  stack_.tunnelUp();
  s8_t index = -1;
  if (netif_add_ip6_address(&netif_, &config_.localAddress, &index) != ERR_OK || index < 0) {
    error = "lwIP refused the tunnel address";
    return false;
  }
  netif_ip6_addr_set_state(&netif_, index, IP6_ADDR_PREFERRED);
  netif_set_up(&netif_);
  netif_set_link_up(&netif_);
  if (role_ == Role::Device && !startListening(error)) return false;
  state_ = State::Running;
  if (handshakeTimer_) {
    loop_.cancelTimer(handshakeTimer_);
    handshakeTimer_ = 0;
  }
  loop_.defer(this);  // packets that came behind the frame
  return true;
}

bool Tunnel::startListening(std::string& error) {
  for (const auto& [port, target] : config_.ports) {
    struct tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_V6);
    if (!pcb) {
      error = "lwIP has no memory for a listener";
      return false;
    }
    tcp_bind_netif(pcb, &netif_);
    ip_addr_t local;
    ip_addr_copy_from_ip6(local, config_.localAddress);
    if (tcp_bind(pcb, &local, port) != ERR_OK) {
      tcp_abort(pcb);
      error = "cannot listen on tunnel port " + std::to_string(port);
      return false;
    }
    struct tcp_pcb* listening = tcp_listen(pcb);  // frees pcb on success
    if (!listening) {
      tcp_abort(pcb);
      error = "tcp_listen failed on tunnel port " + std::to_string(port);
      return false;
    }
    auto listener = std::make_unique<Listener>(Listener{this, port, target, listening});
    tcp_arg(listening, listener.get());
    tcp_accept(listening, onAccept);
    listeners_.push_back(std::move(listener));
  }
  return true;
}

err_t Tunnel::onAccept(void* arg, struct tcp_pcb* pcb, err_t err) {
  Listener* listener = static_cast<Listener*>(arg);
  if (!listener || err != ERR_OK || !pcb) return ERR_VAL;
  return listener->tunnel->accepted(pcb, listener->port, listener->target);
}

err_t Tunnel::accepted(struct tcp_pcb* pcb, uint16_t port, const PortTarget& target) {
  if (closing_ || streams_.size() >= kMaxStreamsPerTunnel) {
    log("warning", "tunnel port " + std::to_string(port) + ": refused, " + std::to_string(streams_.size()) +
                       " streams are open (the limit is " + std::to_string(kMaxStreamsPerTunnel) + ")");
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  int fd = -1;
  int rc = -1;
  if (!target.path.empty()) {
    struct sockaddr_un sun {};
    sun.sun_family = AF_UNIX;
    if (target.path.size() < sizeof sun.sun_path) {
      std::memcpy(sun.sun_path, target.path.data(), target.path.size());
      fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd >= 0) rc = ::connect(fd, reinterpret_cast<struct sockaddr*>(&sun), sizeof sun);
    } else {
      errno = ENAMETOOLONG;
    }
  } else {
    struct sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(target.port);
    if (inet_pton(AF_INET, target.host.empty() ? "127.0.0.1" : target.host.c_str(), &sin.sin_addr) == 1) {
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd >= 0) rc = ::connect(fd, reinterpret_cast<struct sockaddr*>(&sin), sizeof sin);
    } else {
      errno = EINVAL;
    }
  }
  bool connecting = rc != 0 && errno == EINPROGRESS;
  if (rc != 0 && !connecting) {
    int error = errno;
    if (fd >= 0) ::close(fd);
    log("warning", "tunnel port " + std::to_string(port) + ": the service did not take the connection: " +
                       std::strerror(error));
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  uint32_t id = mux::allocateConnectionId();
  auto stream = loop_.makeRetiring<Stream>(*this, id, pcb);
  streams_[id] = stream;
  stream->attach(fd, connecting, {});
  return ERR_OK;
}

bool Tunnel::connect(uint32_t id, const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs,
                     std::string& error) {
  if (state_ != State::Running) {
    error = std::string("the tunnel is not running (") + stateName(state_) + ")";
    return false;
  }
  if (streams_.size() >= kMaxStreamsPerTunnel) {
    error = std::to_string(streams_.size()) + " streams are open in this tunnel (the limit is " +
            std::to_string(kMaxStreamsPerTunnel) + ")";
    return false;
  }
  auto stream = loop_.makeRetiring<Stream>(*this, id, nullptr);
  if (!stream->connect(address, port, timeoutMs, error)) return false;
  streams_[id] = stream;
  return true;
}

void Tunnel::connectSocket(int fd, const ip6_addr_t& address, uint16_t port) {
  std::string error;
  if (state_ != State::Running || streams_.size() >= kMaxStreamsPerTunnel) {
    error = state_ != State::Running ? "the tunnel is not running" : "too many streams";
  } else {
    uint32_t id = mux::allocateConnectionId();
    auto stream = loop_.makeRetiring<Stream>(*this, id, nullptr, true);
    if (stream->connect(address, port, kDefaultStreamConnectTimeoutMs, error)) {
      streams_[id] = stream;
      stream->attach(fd, false, {});
      return;
    }
  }
  ::close(fd);
  log("warning", "tunnel " + std::to_string(id_) + ": a preamble client's connect to port " +
                     std::to_string(port) + " failed: " + error);
}

void Tunnel::addPreambleListener(std::shared_ptr<PreambleListener> listener) {
  if (state_ == State::Closed) {
    listener->close();
    return;
  }
  listener->start();
  preambleListeners_.push_back(std::move(listener));
}

Stream* Tunnel::findStream(uint32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void Tunnel::streamEnded(uint32_t id, const std::string& reason, uint64_t bytesIn, uint64_t bytesOut,
                         bool notify) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::shared_ptr<Stream> keep = std::move(it->second);  // freed at the end of the turn
  streams_.erase(it);
  if (notify) observer_.onStreamClosed(*this, id, reason, bytesIn, bytesOut);
}

void Tunnel::stopNetif() {
  for (auto& listener : preambleListeners_) listener->close();
  preambleListeners_.clear();
  for (auto& listener : listeners_) {
    tcp_arg(listener->pcb, nullptr);
    tcp_accept(listener->pcb, nullptr);
    tcp_close(listener->pcb);
  }
  listeners_.clear();
  if (netifUp_) {
    netif_remove(&netif_);
    stack_.tunnelDown();
    netifUp_ = false;
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
  queue_.clear();
  queuedBytes_ = 0;
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
