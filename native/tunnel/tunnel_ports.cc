// A tunnel's interface and its TCP side: bringing the netif up after the
// handshake, the device role's listening ports and what they connect to,
// and the host role's streams (tunnel.cc holds the TLS link and packets).
#include <arpa/inet.h>
#include <errno.h>
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
#include "tunnel/tunnel.h"

namespace tsmuxd::tunnel {

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
  if (role_ == Role::Host) {
    NETIF_SET_CHECKSUM_CTRL(&netif_, NETIF_CHECKSUM_ENABLE_ALL & ~NETIF_CHECKSUM_CHECK_TCP);
  }
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

}  // namespace tsmuxd::tunnel
