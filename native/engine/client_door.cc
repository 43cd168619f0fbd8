#include "engine/client_door.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/byte_order.h"

namespace tsmuxd::engine {

// One accepted client whose first message is not whole yet.
class ClientDoor::Guest : public core::Pollable {
 public:
  Guest(ClientDoor& door, uint64_t id, DoorArrival arrival)
      : door_(door), id_(id), arrival_(std::move(arrival)) {
    arrival_.bytes.reserve(kDoorHeaderSize);
  }
  ~Guest() override { closeFd(); }

  uint64_t id() const { return id_; }
  core::EventLoop::TimerId timer = 0;

  // Reads what has arrived; may hand this guest over or drop it.
  void onPoll(uint32_t) override {
    if (closed_) return;
    std::vector<uint8_t>& bytes = arrival_.bytes;
    for (;;) {
      size_t want = bytes.size() < kDoorHeaderSize ? kDoorHeaderSize : expected_;
      size_t have = bytes.size();
      bytes.resize(want);
      ssize_t n = recv(arrival_.fd, bytes.data() + have, want - have, MSG_DONTWAIT);
      bytes.resize(have + (n > 0 ? size_t(n) : 0));
      if (n == 0) return door_.drop(*this);  // the client left before asking anything
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        return door_.drop(*this);
      }
      if (bytes.size() == kDoorHeaderSize && expected_ == 0) {
        uint32_t length = core::getLe32(bytes.data());
        // Not ours to judge: JS answers a bad length as it always has.
        if (length < kDoorHeaderSize || length > kDoorMaxMessage) return door_.handOver(*this, "a bad length");
        expected_ = length;
        bytes.reserve(length);
      }
      if (expected_ != 0 && bytes.size() == expected_) {
        arrival_.complete = true;
        return door_.handOver(*this, "");
      }
    }
  }

  // The arrival, fd and all; the guest no longer owns the fd.
  DoorArrival release() {
    if (!closed_) {
      closed_ = true;
      door_.loop_.remove(arrival_.fd);
    }
    DoorArrival out = std::move(arrival_);
    arrival_.fd = -1;
    return out;
  }

  void closeFd() {
    if (closed_) return;
    closed_ = true;
    door_.loop_.remove(arrival_.fd);
    ::close(arrival_.fd);
    arrival_.fd = -1;
  }

 private:
  ClientDoor& door_;
  uint64_t id_;
  DoorArrival arrival_;
  uint32_t expected_ = 0;  // the message's length, once its header is in
};

int ClientDoor::listenUnix(const std::string& path, int backlog, std::string& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    error = "socket path must be 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes";
    return -1;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, backlog) != 0) {
    error = "listen " + path + ": " + strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

ClientDoor::ClientDoor(core::EventLoop& loop, int listenFd, OnArrival onArrival)
    : loop_(loop), acceptor_(loop, listenFd, [this](int fd) { admit(fd); }), onArrival_(std::move(onArrival)) {}

ClientDoor::~ClientDoor() { close(); }

void ClientDoor::close() {
  if (closed_) return;
  closed_ = true;
  acceptor_.close();
  // Clients still waiting see EOF, as they would from a daemon that stopped.
  for (auto& g : waiting_) {
    if (g.second->timer) loop_.cancelTimer(g.second->timer);
    g.second->closeFd();
  }
  waiting_.clear();
}

void ClientDoor::admit(int fd) {
  DoorArrival arrival;
  arrival.fd = fd;
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0 && length == sizeof cred) {
    arrival.hasCredentials = true;
    arrival.pid = cred.pid;
    arrival.uid = cred.uid;
    arrival.gid = cred.gid;
  }
  uint64_t id = nextGuest_++;
  auto guest = loop_.makeRetiring<Guest>(*this, id, std::move(arrival));
  if (waiting_.size() >= kDoorMaxWaiting) {
    // JS serves it from the start, under its own bounds.
    onArrival_(guest->release());
    return;
  }
  waiting_[id] = guest;
  loop_.add(fd, guest.get(), EPOLLIN | EPOLLRDHUP);
  guest->timer = loop_.addTimer(kDoorWaitMs, [this, id] {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return;
    it->second->timer = 0;
    handOver(*it->second, "no whole first message within the door's wait");
  });
  // A client usually writes right after connecting: its request may be here.
  guest->onPoll(EPOLLIN);
}

void ClientDoor::handOver(Guest& guest, const char* why) {
  if (guest.timer) loop_.cancelTimer(guest.timer);
  guest.timer = 0;
  DoorArrival arrival = guest.release();
  arrival.why = why;
  waiting_.erase(guest.id());  // freed after the turn (makeRetiring)
  onArrival_(std::move(arrival));
}

void ClientDoor::drop(Guest& guest) {
  if (guest.timer) loop_.cancelTimer(guest.timer);
  guest.timer = 0;
  guest.closeFd();
  waiting_.erase(guest.id());
}

}  // namespace tsmuxd::engine
