#include "sim/test_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>


namespace tsmuxd::sim {
// One accepted connection. Edge-triggered: it reads while the protocol has
// room (an echo whose peer does not read stops reading), and writes what the
// protocol has ready until the socket is full.
class TestServiceConn : public core::Pollable {
 public:
  TestServiceConn(TestServiceListener& owner, TestServiceKind kind, int fd)
      : owner_(owner), fd_(fd), protocol_(kind), in_(256 << 10) {}
  ~TestServiceConn() override { closeFd(); }

  void onPoll(uint32_t events) override {
    if (events & EPOLLERR) return fail();
    if (events & EPOLLOUT) writable_ = true;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) readable_ = true;
    run();
  }

  void closeFd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    closed_ = true;
  }

 private:
  void run() {
    while (!closed_) {
      if (!flush()) return;  // output pending: wait for EPOLLOUT
      size_t room = std::min(protocol_.inputRoom(), in_.size());
      if (!readable_ || room == 0) return;
      ssize_t n = ::read(fd_, in_.data(), room);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          readable_ = false;
          return;
        }
        if (errno == EINTR) continue;
        return fail();
      }
      if (n == 0) return fail();  // the peer closed: so do we
      protocol_.consume(in_.data(), size_t(n));
    }
  }

  // Writes what the protocol has ready; false while some is left.
  bool flush() {
    while (protocol_.hasOutput()) {
      if (!writable_) return false;
      ssize_t n = ::send(fd_, protocol_.outData(), protocol_.outSize(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          writable_ = false;
          return false;
        }
        if (errno == EINTR) continue;
        fail();
        return false;
      }
      protocol_.sent(size_t(n));
    }
    return true;
  }

  void fail() {
    if (closed_) return;
    closeFd();
    owner_.connectionClosed(this);
  }

  TestServiceListener& owner_;
  int fd_;
  Measuring protocol_;
  std::vector<uint8_t> in_;
  bool readable_ = true;
  bool writable_ = true;
};

std::shared_ptr<TestServiceListener> TestServiceListener::open(core::EventLoop& loop, TestServiceKind kind,
                                                               const std::string& path, std::string& address,
                                                               std::string& error) {
  int fd;
  if (path.empty()) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 512) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      error = std::string("cannot listen on 127.0.0.1: ") + strerror(errno);
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    address = std::to_string(ntohs(sa.sin_port));
  } else {
    sockaddr_un sa{};
    if (path.size() >= sizeof sa.sun_path) {
      error = "socket path too long: " + path;
      return nullptr;
    }
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path.data(), path.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 512) != 0) {
      error = "cannot listen on " + path + ": " + strerror(errno);
      if (fd >= 0) ::close(fd);
      return nullptr;
    }
    address = path;
  }
  return std::shared_ptr<TestServiceListener>(new TestServiceListener(loop, kind, fd, path));
}

TestServiceListener::TestServiceListener(core::EventLoop& loop, TestServiceKind kind, int fd, std::string path)
    : loop_(loop), kind_(kind), fd_(fd), path_(std::move(path)) {}

TestServiceListener::~TestServiceListener() {
  if (fd_ >= 0) ::close(fd_);
}

void TestServiceListener::start() { loop_.add(fd_, this, EPOLLIN); }

void TestServiceListener::close() {
  if (closed_) return;
  closed_ = true;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
  if (!path_.empty()) unlink(path_.c_str());
  for (auto& [raw, conn] : conns_) {
    conn->closeFd();
    loop_.retire(conn);
  }
  conns_.clear();
}

void TestServiceListener::onPoll(uint32_t) {
  for (;;) {
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of fds (EMFILE): the next connection retries
    }
    if (path_.empty()) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    auto conn = std::make_shared<TestServiceConn>(*this, kind_, fd);
    conns_[conn.get()] = conn;
    loop_.add(fd, conn.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    conn->onPoll(EPOLLIN);
  }
}

void TestServiceListener::connectionClosed(TestServiceConn* conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  loop_.retire(it->second);
  conns_.erase(it);
}

}  // namespace tsmuxd::sim
