// The engine's connections: connect requests from JS, client fds handed
// over after a Connect, and the session observer that turns mux events into
// NativeEvents. Device role: incoming connections go to the link's port map.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/engine.h"
#include "engine/fd_pump.h"
#include "tunnel/stream.h"

namespace tsmuxd::engine {

uint32_t Engine::connect(uint32_t handle, uint16_t port, uint64_t timeoutMs) {
  uint32_t id = mux::allocateConnectionId();
  loop_.post([this, handle, port, timeoutMs, id] {
    DeviceLink* link = findLink(handle);
    Fault fault(codes::kNoDevice, "no such device");
    std::shared_ptr<mux::Connection> conn;
    if (link && link->session() && link->role() == mux::Role::Host) {
      fault = Fault();
      conn = link->session()->connect(id, port, timeoutMs, fault);
    }
    if (!conn) {
      NativeEvent ev(NativeEvent::Type::ConnectFailed);
      ev.handle = handle;
      ev.conn = id;
      ev.code = fault.code == codes::kNoConnection ? "ENOPORT" : "ENODEV";
      ev.text = fault.message;
      emit(std::move(ev));
      return;
    }
    conns_[id] = conn;
  });
  return id;
}

int Engine::ownClientSocket(int fd, std::string& error) {
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) {
    error = std::string("cannot duplicate the client socket: ") + strerror(errno);
    return -1;
  }
  fcntl(own, F_SETFL, fcntl(own, F_GETFL) | O_NONBLOCK);
  return own;
}

bool Engine::attachClient(uint32_t connId, int fd, std::vector<uint8_t> pipelined,
                          std::string& error) {
  int own = ownClientSocket(fd, error);
  if (own < 0) return false;
  loop_.post([this, connId, own, bytes = std::move(pipelined)]() mutable {
    auto it = conns_.find(connId);
    if (it == conns_.end() || it->second->state() == mux::Connection::State::Closed ||
        it->second->hasIo()) {
      ::close(own);  // the client sees EOF; the connection is already gone
      return;
    }
    auto pump = loop_.makeRetiring<FdPump>(loop_, own, false);
    pump->setPipelined(std::move(bytes));
    pump->bind(it->second.get());
    it->second->setIo(pump);
  });
  return true;
}

void Engine::closeConnection(uint32_t connId) {
  loop_.post([this, connId] {
    auto it = conns_.find(connId);
    if (it != conns_.end()) it->second->reset("closed by the daemon");
    if (tunnel::Stream* s = findStream(connId)) s->abort("closed by the daemon");  // a tunnelConnect stream
  });
}

// ---- session observer ----

void Engine::onSessionReady(mux::DeviceSession& s, int version) {
  NativeEvent ev(NativeEvent::Type::Ready);
  ev.handle = s.handle();
  ev.version = version;
  emit(std::move(ev));
}

void Engine::onSessionLog(mux::DeviceSession& s, mux::LogLevel level, const std::string& text) {
  NativeEvent ev(NativeEvent::Type::Log);
  ev.handle = s.handle();
  ev.level = mux::logLevelName(level);
  ev.text = text;
  emit(std::move(ev));
}

void Engine::onSessionFailed(mux::DeviceSession& s, const Fault& why) {
  DeviceLink* link = findLink(s.handle());
  if (link) linkClosed(*link, why);
}

void Engine::onIncomingConnection(mux::DeviceSession& s,
                                  const std::shared_ptr<mux::Connection>& conn) {
  conns_[conn->id()] = conn;
  DeviceLink* link = findLink(s.handle());
  if (std::shared_ptr<InProcessService> service = link ? link->ports().takeService(conn->localPort()) : nullptr) {
    service->serve(loop_, conn);
    return;
  }
  bool connecting = false;
  int error = ECONNREFUSED;
  int fd = link ? link->ports().openLocal(conn->localPort(), connecting, error) : -1;
  if (fd < 0) {
    conn->localConnectFailed(error);
    return;
  }
  auto pump = loop_.makeRetiring<FdPump>(loop_, fd, true);
  pump->bind(conn.get());
  conn->setIo(pump);
  if (!connecting) pump->connectDone(0);
}

void Engine::forgetConnection(mux::Connection& c) {
  auto it = conns_.find(c.id());
  if (it == conns_.end()) return;
  conns_.erase(it);  // the session's makeRetiring frees it after the turn
}

void Engine::onConnected(mux::Connection& c) {
  NativeEvent ev(NativeEvent::Type::Connected);
  ev.handle = c.handle();
  ev.conn = c.id();
  emit(std::move(ev));
}

void Engine::onConnectFailed(mux::Connection& c, const char* code, const std::string& reason) {
  if (c.role() == mux::Role::Host) {
    NativeEvent ev(NativeEvent::Type::ConnectFailed);
    ev.handle = c.handle();
    ev.conn = c.id();
    ev.code = code;
    ev.text = reason;
    emit(std::move(ev));
  }
  forgetConnection(c);
}

void Engine::onConnectionClosed(mux::Connection& c, const std::string& reason) {
  if (c.role() == mux::Role::Host) {
    NativeEvent ev(NativeEvent::Type::Closed);
    ev.conn = c.id();
    ev.text = reason;
    ev.bytesIn = c.bytesIn();
    ev.bytesOut = c.bytesOut();
    emit(std::move(ev));
  }
  forgetConnection(c);
}

void Engine::onConnectionLog(mux::Connection& c, const std::string& text) {
  NativeEvent ev(NativeEvent::Type::Log);
  ev.handle = c.handle();
  ev.conn = c.id();
  ev.level = "warning";
  ev.text = "connection " + std::to_string(c.id()) + " (port " +
            std::to_string(c.role() == mux::Role::Host ? c.remotePort() : c.localPort()) +
            "): " + text;
  emit(std::move(ev));
}

}  // namespace tsmuxd::engine
