// Connects to phones on the network: JS opened the TCP connection to the
// phone and answered the client; from here both sockets are the event
// thread's, joined by a SocketSplice, and their bytes never enter JS.
#include <unistd.h>

#include <exception>
#include <memory>
#include <utility>

#include "engine/engine.h"
#include "mux/connection.h"

namespace tsmuxd::engine {

namespace {
// Owns the two fds until the splice takes them: posted work is dropped when
// the engine stops first, and the fds close with it.
struct SpliceFds {
  SpliceFds(int c, int p) : client(c), phone(p) {}
  SpliceFds(const SpliceFds&) = delete;
  SpliceFds& operator=(const SpliceFds&) = delete;
  ~SpliceFds() {
    if (client >= 0) ::close(client);
    if (phone >= 0) ::close(phone);
  }
  int client;
  int phone;
};
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
  auto fds = std::make_shared<SpliceFds>(client, phone);
  uint32_t id = mux::allocateConnectionId();
  loop_.post([this, id, fds, up = std::move(toPhone), down = std::move(toClient)]() mutable {
    auto ended = [this](SocketSplice& s, const std::string& reason) {
      NativeEvent ev(NativeEvent::Type::Closed);
      ev.conn = s.id();
      ev.text = reason;
      ev.bytesIn = s.bytesToClient();
      ev.bytesOut = s.bytesFromClient();
      emit(std::move(ev));
      splices_.erase(s.id());  // retired: freed after the turn
    };
    try {
      splices_[id] = loop_.makeRetiring<SocketSplice>(loop_, id, fds->client, fds->phone, std::move(up),
                                                      std::move(down), ended);
    } catch (const std::exception& e) {
      // The epoll set refused an fd: this Connect ends, nothing else.
      // The splice (if made) closed its fds; ours are forgotten either way.
      fds->client = fds->phone = -1;
      NativeEvent ev(NativeEvent::Type::Closed);
      ev.conn = id;
      ev.text = std::string("cannot join the sockets: ") + e.what();
      emit(std::move(ev));
      return;
    }
    fds->client = fds->phone = -1;  // the splice's now
  });
  return id;
}

}  // namespace tsmuxd::engine
