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
  loop_.post([this, id, handle, port, timeoutMs] { openConnection(id, handle, port, timeoutMs, nullptr); });
  return id;
}

uint32_t Engine::connectClient(uint32_t handle, uint16_t port, uint64_t timeoutMs, int fd,
                               std::vector<uint8_t> pipelined, std::vector<uint8_t> greeting,
                               ClientFd mode, std::string& error) {
  int own = fd;
  if (mode == ClientFd::Duplicate) {
    own = ownClientSocket(fd, error);
    if (own < 0) return 0;
  } else {
    fcntl(own, F_SETFL, fcntl(own, F_GETFL) | O_NONBLOCK);
  }
  // Owned from here: the posted work may be dropped (the engine stopping),
  // and the entry's destructor then closes the fd.
  auto client = std::make_shared<WaitingClient>(own, std::move(pipelined), std::move(greeting), mode);
  uint32_t id = mux::allocateConnectionId();
  loop_.post([this, id, handle, port, timeoutMs, client] { openConnection(id, handle, port, timeoutMs, client); });
  return id;
}

Engine::WaitingClient::~WaitingClient() {
  if (fd >= 0) ::close(fd);  // the client's own end stays open in JS until it answers
}

void Engine::openConnection(uint32_t id, uint32_t handle, uint16_t port, uint64_t timeoutMs,
                            std::shared_ptr<WaitingClient> client) {
  DeviceLink* link = findLink(handle);
  Fault fault(codes::kNoDevice, "no such device");
  std::shared_ptr<mux::Connection> conn;
  if (link && link->session() && link->role() == mux::Role::Host) {
    fault = Fault();
    conn = link->session()->connect(id, port, timeoutMs, fault);
  }
  if (!conn) {
    int giveBack = client && client->mode == ClientFd::Take ? std::exchange(client->fd, -1) : -1;
    // A duplicate, if any, closes with the last reference to `client`.
    emitConnectFailed(handle, id, fault.code == codes::kNoConnection ? "ENOPORT" : "ENODEV", fault.message, giveBack);
    return;
  }
  conns_[id] = conn;
  if (client) waitingClients_.emplace(id, std::move(*client));
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
    pumpClient(*it->second, own, std::move(bytes), {});
  });
  return true;
}

void Engine::pumpClient(mux::Connection& conn, int fd, std::vector<uint8_t> pipelined,
                        std::vector<uint8_t> greeting) {
  auto pump = loop_.makeRetiring<FdPump>(loop_, fd, false);
  pump->setPipelined(std::move(pipelined));
  pump->bind(&conn);
  if (!greeting.empty()) pump->greet(std::move(greeting));
  conn.setIo(pump);
}

uint32_t Engine::openClientDoor(const std::string& path, int backlog, std::string& error) {
  int fd = ClientDoor::listenUnix(path, backlog, error);
  if (fd < 0) return 0;
  uint32_t id = nextListener_++;
  loop_.post([this, fd, id] {
    doors_[id] = loop_.makeRetiring<ClientDoor>(loop_, fd, [this](DoorArrival a) {
      NativeEvent ev(NativeEvent::Type::ClientArrived);
      ev.fd = a.fd;
      ev.hasCredentials = a.hasCredentials;
      ev.pid = uint32_t(a.pid);
      ev.uid = uint32_t(a.uid);
      ev.gid = uint32_t(a.gid);
      ev.complete = a.complete;
      ev.bytes = std::move(a.bytes);
      ev.text = a.why;
      emit(std::move(ev));
    });
  });
  return id;
}

void Engine::closeClientDoor(uint32_t door) {
  loop_.post([this, door] {
    auto it = doors_.find(door);
    if (it == doors_.end()) return;
    it->second->close();
    doors_.erase(it);
  });
}

void Engine::closeConnection(uint32_t connId) {
  loop_.post([this, connId] {
    auto it = conns_.find(connId);
    if (it != conns_.end()) it->second->reset("closed by the daemon");
    if (tunnel::Stream* s = findStream(connId)) s->abort("closed by the daemon");  // a tunnelConnect stream
    auto splice = splices_.find(connId);  // a network Connect (splices.cc)
    if (splice != splices_.end()) {
      splice->second->close();
      splices_.erase(splice);
    }
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
  waitingClients_.erase(c.id());  // a client that never got its connection: our fd closes
  conns_.erase(it);  // the session's makeRetiring frees it after the turn
}

void Engine::onConnected(mux::Connection& c) {
  auto waiting = waitingClients_.find(c.id());
  if (waiting != waitingClients_.end()) {
    WaitingClient client = std::move(waiting->second);
    waitingClients_.erase(waiting);
    pumpClient(c, std::exchange(client.fd, -1), std::move(client.pipelined), std::move(client.greeting));
    // Nobody in JS waits for a client it gave us outright: one wakeup less.
    if (client.mode == ClientFd::Take) return;
  }
  NativeEvent ev(NativeEvent::Type::Connected);
  ev.handle = c.handle();
  ev.conn = c.id();
  emit(std::move(ev));
}

void Engine::onConnectFailed(mux::Connection& c, const char* code, const std::string& reason) {
  if (c.role() == mux::Role::Host) {
    int giveBack = -1;
    auto waiting = waitingClients_.find(c.id());
    if (waiting != waitingClients_.end() && waiting->second.mode == ClientFd::Take) {
      giveBack = std::exchange(waiting->second.fd, -1);
    }
    emitConnectFailed(c.handle(), c.id(), code, reason, giveBack);
  }
  forgetConnection(c);
}

void Engine::emitConnectFailed(uint32_t handle, uint32_t conn, std::string code, std::string reason, int fd) {
  NativeEvent ev(NativeEvent::Type::ConnectFailed);
  ev.handle = handle;
  ev.conn = conn;
  ev.code = std::move(code);
  ev.text = std::move(reason);
  ev.fd = fd;
  emit(std::move(ev));
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
