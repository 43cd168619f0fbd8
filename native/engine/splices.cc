// Splices (socket_splice.h): JS opened the TCP connection to a phone on the
// network or to a remote usbmux host, or accepted one from a remote client;
// from here the sockets are the event thread's and their bytes never enter
// JS. TLS to a remote host runs here too, handshake included.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <utility>

#include "engine/engine.h"
#include "mux/connection.h"

namespace tsmuxd::engine {

Engine::SpliceFds::~SpliceFds() {
  if (client >= 0) ::close(client);
  if (far >= 0) ::close(far);
}

namespace {
std::unique_ptr<tunnel::TlsChannel> remoteTls(const RemoteTls* tls, tunnel::TlsChannel::Role role,
                                              std::string& error) {
  if (!tls) return nullptr;
  auto channel = tunnel::TlsChannel::createMutual(role, tls->certPem, tls->keyPem, tls->caPem, error);
  if (!channel) error = "remote TLS: " + error;
  return channel;
}
}  // namespace

uint32_t Engine::spliceSockets(int clientFd, std::vector<uint8_t> toPhone, int phoneFd,
                               std::vector<uint8_t> toClient, std::string& error) {
  if (toPhone.size() > kSpliceMaxEarlyBytes || toClient.size() > kSpliceMaxEarlyBytes) {
    error = "more early bytes than a splice holds (" + std::to_string(kSpliceMaxEarlyBytes) + ")";
    return 0;
  }
  int client = ownClientSocket(clientFd, error);
  if (client < 0) return 0;
  int phone = ownClientSocket(phoneFd, error);
  if (phone < 0) {
    ::close(client);
    return 0;
  }
  uint32_t id = mux::allocateConnectionId();
  startSplice(id, std::make_shared<SpliceFds>(client, phone), nullptr, std::move(toPhone), std::move(toClient),
              Mode::Network);
  return id;
}

uint32_t Engine::dialRemote(int farFd, const RemoteTls* tls, std::vector<uint8_t> request, std::string& error) {
  if (request.size() > kSpliceMaxEarlyBytes) {
    error = "a Connect request of " + std::to_string(request.size()) + " bytes";
    return 0;
  }
  auto channel = remoteTls(tls, tunnel::TlsChannel::Role::Client, error);
  if (tls && !channel) return 0;
  int far = ownClientSocket(farFd, error);
  if (far < 0) return 0;
  uint32_t id = mux::allocateConnectionId();
  startSplice(id, std::make_shared<SpliceFds>(-1, far), std::move(channel), std::move(request), {}, Mode::Dial);
  return id;
}

bool Engine::attachDialled(uint32_t id, int clientFd, std::vector<uint8_t> pipelined, std::string& error) {
  if (pipelined.size() > kSpliceMaxEarlyBytes) {
    error = "more early bytes than a splice holds (" + std::to_string(kSpliceMaxEarlyBytes) + ")";
    return false;
  }
  int client = ownClientSocket(clientFd, error);
  if (client < 0) return false;
  auto fds = std::make_shared<SpliceFds>(client, -1);
  loop_.post([this, id, fds, early = std::move(pipelined)]() mutable {
    auto it = splices_.find(id);
    // Gone (its Closed event is on its way to JS): the client's fd closes with `fds`.
    if (it == splices_.end()) return;
    int fd = fds->client;
    fds->client = -1;  // the splice's from the call, even when it throws
    try {
      if (!it->second->attachClient(fd, std::move(early))) ::close(fd);
    } catch (const std::exception& e) {
      it->second->close();
      NativeEvent ev(NativeEvent::Type::Closed);
      ev.conn = id;
      ev.text = std::string("cannot join the client: ") + e.what();
      emit(std::move(ev));
      splices_.erase(id);
    }
  });
  return true;
}

uint32_t Engine::serveRemote(int farFd, const RemoteTls& tls, int& localFd, std::string& error) {
  auto channel = remoteTls(&tls, tunnel::TlsChannel::Role::Server, error);
  if (!channel) return 0;
  int far = ownClientSocket(farFd, error);
  if (far < 0) return 0;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    error = std::string("socketpair: ") + strerror(errno);
    ::close(far);
    return 0;
  }
  localFd = pair[1];  // JS's: the usbmuxd server reads it as a client
  uint32_t id = mux::allocateConnectionId();
  startSplice(id, std::make_shared<SpliceFds>(pair[0], far), std::move(channel), {}, {}, Mode::Serve);
  return id;
}

void Engine::spliceFarGone(uint32_t conn, std::string reason) {
  loop_.post([this, conn, why = std::move(reason)] {
    auto it = splices_.find(conn);
    if (it != splices_.end()) it->second->farGone(why);
  });
}

void Engine::startSplice(uint32_t id, std::shared_ptr<SpliceFds> fds, std::unique_ptr<tunnel::TlsChannel> tls,
                         std::vector<uint8_t> toFar, std::vector<uint8_t> toClient, Mode mode) {
  // std::function needs a copyable closure: the channel rides in a shared_ptr.
  auto channel = std::make_shared<std::unique_ptr<tunnel::TlsChannel>>(std::move(tls));
  loop_.post([this, id, fds, channel, mode, up = std::move(toFar), down = std::move(toClient)]() mutable {
    auto ended = [this](SocketSplice& s, const std::string& reason) {
      NativeEvent ev(NativeEvent::Type::Closed);
      ev.conn = s.id();
      ev.text = reason;
      ev.bytesIn = s.bytesToClient();
      ev.bytesOut = s.bytesFromClient();
      emit(std::move(ev));
      splices_.erase(s.id());  // retired: freed after the turn
    };
    SocketSplice::Reply onReply;
    if (mode == Mode::Dial) {
      onReply = [this](SocketSplice& s, std::vector<uint8_t> message) {
        NativeEvent ev(NativeEvent::Type::RemoteReply);
        ev.conn = s.id();
        ev.bytes = std::move(message);
        emit(std::move(ev));
      };
    }
    SocketSplice::Secure onSecure = [this](SocketSplice& s, const std::string& description) {
      NativeEvent ev(NativeEvent::Type::RemoteSecure);
      ev.conn = s.id();
      ev.text = description;
      emit(std::move(ev));
    };
    SocketSplice::Far far{fds->far, std::move(*channel)};
    int client = fds->client;
    fds->client = fds->far = -1;  // the splice's from the call, even when it throws
    try {
      splices_[id] = loop_.makeRetiring<SocketSplice>(loop_, id, client, std::move(far), std::move(up), std::move(down),
                                                      ended, onReply, onSecure);
    } catch (const std::exception& e) {
      // The epoll set refused an fd: this connection ends, nothing else.
      NativeEvent ev(NativeEvent::Type::Closed);
      ev.conn = id;
      ev.text = std::string("cannot join the sockets: ") + e.what();
      emit(std::move(ev));
    }
  });
}

}  // namespace tsmuxd::engine
