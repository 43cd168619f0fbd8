// The engine's tunnels: CoreDeviceProxy on a mux connection, both roles.
// JS starts a tunnel (host) or maps a port that serves one (device), hears
// the handshake body, configures the tunnel, and opens streams; every call
// is posted to the event thread and answers with an event.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/engine.h"
#include "tunnel/limits.h"
#include "tunnel/preamble_listener.h"
#include "tunnel/stream.h"
#include "tunnel/tls_channel.h"

namespace tsmuxd::engine {

namespace {

// A device port that serves CoreDeviceProxy: each connection becomes a
// device-role tunnel with this TLS identity.
class TunnelService : public InProcessService {
 public:
  TunnelService(Engine& engine, std::string certPem, std::string keyPem)
      : engine_(engine), certPem_(std::move(certPem)), keyPem_(std::move(keyPem)) {}
  void serve(core::EventLoop&, const std::shared_ptr<mux::Connection>& conn) override {
    engine_.serveTunnel(conn, certPem_, keyPem_);
  }

 private:
  Engine& engine_;
  std::string certPem_;
  std::string keyPem_;
};

}  // namespace

tunnel::Stack* Engine::claimStack(std::string& error) {
  if (!stack_) stack_ = tunnel::Stack::claim(loop_, this, error);
  return stack_;
}

tunnel::Tunnel* Engine::findTunnel(uint32_t id) {
  auto it = tunnels_.find(id);
  return it == tunnels_.end() ? nullptr : it->second.get();
}

tunnel::Stream* Engine::findStream(uint32_t id) {
  auto it = streamTunnels_.find(id);
  tunnel::Tunnel* t = it == streamTunnels_.end() ? nullptr : findTunnel(it->second);
  return t ? t->findStream(id) : nullptr;
}

void Engine::tunnelFailed(uint32_t id, uint32_t handle, const char* code, const std::string& reason) {
  NativeEvent ev(NativeEvent::Type::TunnelClosed);
  ev.handle = handle;
  ev.tunnel = id;
  ev.code = code;
  ev.text = reason;
  emit(std::move(ev));
}

uint32_t Engine::startTunnel(uint32_t connId, std::string certPem, std::string keyPem, std::string request) {
  uint32_t id = nextTunnel_++;
  loop_.post([this, id, connId, cert = std::move(certPem), key = std::move(keyPem),
              request = std::move(request)]() mutable {
    auto it = conns_.find(connId);
    if (it == conns_.end() || it->second->state() != mux::Connection::State::Established ||
        it->second->hasIo() || it->second->role() != mux::Role::Host) {
      tunnelFailed(id, 0, "ENOCONN", "connection " + std::to_string(connId) +
                                         " is not a connected host connection without a client");
      return;
    }
    std::shared_ptr<mux::Connection> conn = it->second;
    std::string error;
    if (tunnels_.size() >= tunnel::kMaxTunnels) {
      error = std::to_string(tunnels_.size()) + " tunnels are up (the limit is " +
              std::to_string(tunnel::kMaxTunnels) + ")";
    }
    tunnel::Stack* stack = error.empty() ? claimStack(error) : nullptr;
    std::unique_ptr<tunnel::TlsChannel> tls =
        stack ? tunnel::TlsChannel::create(tunnel::TlsChannel::Role::Client, cert, key, error) : nullptr;
    if (!tls) {
      conn->reset("tunnel: " + error);
      tunnelFailed(id, conn->handle(), "EINVAL", error);
      return;
    }
    auto t = loop_.makeRetiring<tunnel::Tunnel>(loop_, *stack, *this, tunnel::Tunnel::Role::Host, id,
                                                conn->handle(), std::move(tls), std::move(request));
    tunnels_[id] = t;
    conn->setIo(t);
    t->start(conn.get());
  });
  return id;
}

std::shared_ptr<InProcessService> Engine::tunnelService(std::string certPem, std::string keyPem) {
  return std::make_shared<TunnelService>(*this, std::move(certPem), std::move(keyPem));
}

void Engine::serveTunnel(const std::shared_ptr<mux::Connection>& conn, const std::string& certPem,
                         const std::string& keyPem) {
  std::string error;
  if (tunnels_.size() >= tunnel::kMaxTunnels) error = "too many tunnels";
  tunnel::Stack* stack = error.empty() ? claimStack(error) : nullptr;
  std::unique_ptr<tunnel::TlsChannel> tls =
      stack ? tunnel::TlsChannel::create(tunnel::TlsChannel::Role::Server, certPem, keyPem, error) : nullptr;
  if (!tls) {
    emitLog(conn->handle(), "error", "CoreDeviceProxy: " + error);
    conn->localConnectFailed(ECONNREFUSED);
    return;
  }
  uint32_t id = nextTunnel_++;
  auto t = loop_.makeRetiring<tunnel::Tunnel>(loop_, *stack, *this, tunnel::Tunnel::Role::Device, id,
                                              conn->handle(), std::move(tls), std::string());
  tunnels_[id] = t;
  conn->setIo(t);
  t->start(conn.get());
}

void Engine::configureTunnel(uint32_t id, tunnel::TunnelConfig config) {
  loop_.post([this, id, config = std::move(config)]() mutable {
    tunnel::Tunnel* t = findTunnel(id);
    if (!t) return;  // it closed meanwhile; JS has its tunnelClosed
    std::string error;
    if (!t->configure(std::move(config), error)) t->close("EINVAL", error);
  });
}

uint32_t Engine::tunnelConnect(uint32_t tunnelId, const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs) {
  uint32_t id = mux::allocateConnectionId();
  loop_.post([this, tunnelId, address, port, timeoutMs, id] {
    tunnel::Tunnel* t = findTunnel(tunnelId);
    std::string error = "no such tunnel";
    if (t && t->connect(id, address, port, timeoutMs, error)) {
      streamTunnels_[id] = tunnelId;
      return;
    }
    NativeEvent ev(NativeEvent::Type::ConnectFailed);
    ev.handle = t ? t->handle() : 0;
    ev.conn = id;
    ev.code = t ? "ECONNREFUSED" : "ENOTUNNEL";
    ev.text = error;
    emit(std::move(ev));
  });
  return id;
}

bool Engine::attachTunnelClient(uint32_t streamId, int fd, std::vector<uint8_t> pipelined, std::string& error) {
  int own = ownClientSocket(fd, error);
  if (own < 0) return false;
  loop_.post([this, streamId, own, bytes = std::move(pipelined)]() mutable {
    tunnel::Stream* stream = findStream(streamId);
    if (!stream || !stream->connected()) {
      ::close(own);  // the client sees EOF: the stream is already gone
      return;
    }
    stream->attach(own, false, std::move(bytes));
  });
  return true;
}

uint16_t Engine::listenTunnelPreamble(uint32_t tunnelId, const std::string& host, uint16_t port,
                                      std::string& error) {
  uint16_t bound = 0;
  int fd = tunnel::PreambleListener::bindListener(host, port, bound, error);
  if (fd < 0) return 0;
  loop_.post([this, tunnelId, fd] {
    tunnel::Tunnel* t = findTunnel(tunnelId);
    if (!t) {
      ::close(fd);
      return;
    }
    uint32_t handle = t->handle();
    auto listener = std::make_shared<tunnel::PreambleListener>(
        loop_, fd,
        [this, tunnelId](int client, const ip6_addr_t& address, uint16_t to) {
          tunnel::Tunnel* tt = findTunnel(tunnelId);
          if (tt) tt->connectSocket(client, address, to);
          else ::close(client);
        },
        [this, handle](const std::string& text) { emitLog(handle, "warning", text); });
    t->addPreambleListener(listener);
  });
  return bound;
}

bool Engine::openTunnelInterface(uint32_t tunnelId, const tunnel::TunSetup& setup, std::string& name,
                                 std::string& error) {
  int fd = tunnel::openTunInterface(setup, name, error);
  if (fd < 0) return false;
  loop_.post([this, tunnelId, fd, name] {
    tunnel::Tunnel* t = findTunnel(tunnelId);
    if (t) t->attachTun(fd, name);  // closes it if the tunnel is no longer running
    else ::close(fd);
  });
  return true;
}

void Engine::closeTunnel(uint32_t id) {
  loop_.post([this, id] {
    if (tunnel::Tunnel* t = findTunnel(id)) t->close("ECANCELED", "closed by the daemon");
  });
}

void Engine::closeAllTunnels() {
  std::vector<std::shared_ptr<tunnel::Tunnel>> left;
  for (auto& [id, t] : tunnels_) left.push_back(t);
  for (auto& t : left) t->close("ESHUTDOWN", "the daemon is stopping", false);
  tunnels_.clear();
  streamTunnels_.clear();
}

// ---- tunnel observer ----

void Engine::onTunnelHandshake(tunnel::Tunnel& t, const std::string& body) {
  NativeEvent ev(NativeEvent::Type::TunnelHandshake);
  ev.handle = t.handle();
  ev.tunnel = t.id();
  ev.role = t.role() == tunnel::Tunnel::Role::Host ? "host" : "device";
  ev.text = body;
  emit(std::move(ev));
}

void Engine::onTunnelClosed(tunnel::Tunnel& t, const char* code, const std::string& reason) {
  tunnelFailed(t.id(), t.handle(), code, reason);
  const tunnel::TunnelCounters& c = t.counters();
  if (c.droppedQueueFull || c.droppedLoss || c.droppedOversize || c.droppedMalformed || c.droppedOverMtu) {
    emitLog(t.handle(), "info",
            "tunnel " + std::to_string(t.id()) + ": " + std::to_string(c.packetsIn) + " packets in, " +
                std::to_string(c.packetsOut) + " out; dropped " + std::to_string(c.droppedQueueFull) +
                " (queue full), " + std::to_string(c.droppedLoss) + " (loss), " +
                std::to_string(c.droppedOversize) + " (oversize), " + std::to_string(c.droppedMalformed) +
                " (headers cut short), " + std::to_string(c.droppedOverMtu) + " (ours, over the MTU)");
  }
  if (!t.tunName().empty()) {
    emitLog(t.handle(), "info",
            "tunnel " + std::to_string(t.id()) + " on " + t.tunName() + ": " + std::to_string(c.packetsToKernel) +
                " packets to the kernel, " + std::to_string(c.packetsFromKernel) + " from it; dropped " +
                std::to_string(c.droppedKernelFull) + " (its queue full), " + std::to_string(c.droppedKernelFiltered) +
                " (not for the phone: multicast, link-local, over the MTU)");
  }
  tunnels_.erase(t.id());  // retired: freed after the turn, or when its last draining stream ends
}

void Engine::onTunnelLog(tunnel::Tunnel& t, const char* level, const std::string& text) {
  emitLog(t.handle(), level, text);
}

void Engine::onStreamConnected(tunnel::Tunnel& t, uint32_t stream) {
  NativeEvent ev(NativeEvent::Type::Connected);
  ev.handle = t.handle();
  ev.conn = stream;
  emit(std::move(ev));
}

void Engine::onStreamConnectFailed(tunnel::Tunnel& t, uint32_t stream, const char* code,
                                   const std::string& reason) {
  streamTunnels_.erase(stream);
  if (t.role() != tunnel::Tunnel::Role::Host) return;
  NativeEvent ev(NativeEvent::Type::ConnectFailed);
  ev.handle = t.handle();
  ev.conn = stream;
  ev.code = code;
  ev.text = reason;
  emit(std::move(ev));
}

void Engine::onStreamClosed(tunnel::Tunnel& t, uint32_t stream, const std::string& reason, uint64_t bytesIn,
                            uint64_t bytesOut) {
  streamTunnels_.erase(stream);
  if (t.role() != tunnel::Tunnel::Role::Host) return;
  NativeEvent ev(NativeEvent::Type::Closed);
  ev.conn = stream;
  ev.text = reason;
  ev.bytesIn = bytesIn;
  ev.bytesOut = bytesOut;
  emit(std::move(ev));
}

}  // namespace tsmuxd::engine
