#include "tunnel/preamble_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "tunnel/limits.h"

namespace tsmuxd::tunnel {

// One accepted client until its 20 bytes are in (or it fails or times out).
class PreambleListener::Reader : public core::Pollable {
 public:
  Reader(PreambleListener& owner, int fd) : owner_(owner), fd_(fd) {
    timer_ = owner_.loop_.addTimer(kPreambleTimeoutMs, [this] {
      timer_ = 0;
      finish("no preamble within " + std::to_string(kPreambleTimeoutMs) + " ms");
    });
    owner_.loop_.add(fd_, this, EPOLLIN | EPOLLRDHUP);
  }
  ~Reader() override {
    if (timer_) owner_.loop_.cancelTimer(timer_);
    if (fd_ >= 0) {
      owner_.loop_.remove(fd_);
      ::close(fd_);
    }
  }
  void onPoll(uint32_t) override {
    while (have_ < kPreambleSize) {
      ssize_t n = ::recv(fd_, preamble_ + have_, kPreambleSize - have_, 0);
      if (n > 0) {
        have_ += size_t(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      finish(n == 0 ? "the client closed before its preamble" : std::string("reading the preamble: ") + std::strerror(errno));
      return;
    }
    finish("");
  }

 private:
  void finish(const std::string& failure) {
    int fd = fd_;
    owner_.loop_.remove(fd_);
    fd_ = -1;
    if (!failure.empty()) ::close(fd);
    // Retires this reader (freed after the turn).
    owner_.readerDone(this, failure.empty() ? fd : -1, preamble_, failure);
  }

  PreambleListener& owner_;
  int fd_;
  uint8_t preamble_[kPreambleSize] = {};
  size_t have_ = 0;
  core::EventLoop::TimerId timer_ = 0;
};

int PreambleListener::bindListener(const std::string& host, uint16_t port, uint16_t& boundPort,
                                   std::string& error) {
  struct sockaddr_in sin {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &sin.sin_addr) != 1) {
    error = "'" + host + "' is not an IPv4 address";
    return -1;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sizeof sin;
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&sin), sizeof sin) != 0 || ::listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<struct sockaddr*>(&sin), &len) != 0) {
    error = "cannot listen on " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  boundPort = ntohs(sin.sin_port);
  return fd;
}

PreambleListener::PreambleListener(core::EventLoop& loop, int fd, OnPreamble onPreamble, OnLog onLog)
    : loop_(loop), fd_(fd), onPreamble_(std::move(onPreamble)), onLog_(std::move(onLog)) {}

PreambleListener::~PreambleListener() { close(); }

void PreambleListener::start() { loop_.add(fd_, this, EPOLLIN); }

void PreambleListener::close() {
  readers_.clear();
  if (fd_ >= 0) {
    loop_.remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
}

void PreambleListener::onPoll(uint32_t) {
  while (fd_ >= 0) {
    int client = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or EMFILE (the next accept retries when epoll says so)
    }
    if (readers_.size() >= kMaxPendingPreambles) {
      ::close(client);
      onLog_("preamble listener: refused a client, " + std::to_string(readers_.size()) +
             " are still to send their preamble");
      continue;
    }
    auto reader = std::make_shared<Reader>(*this, client);
    readers_[reader.get()] = reader;
  }
}

void PreambleListener::readerDone(Reader* reader, int fd, const uint8_t* preamble, const std::string& failure) {
  ip6_addr_t address;
  std::memcpy(&address.addr, preamble, 16);
  uint32_t port = uint32_t(preamble[16]) | uint32_t(preamble[17]) << 8 | uint32_t(preamble[18]) << 16 |
                  uint32_t(preamble[19]) << 24;
  auto it = readers_.find(reader);
  if (it != readers_.end()) {
    loop_.retire(std::move(it->second));
    readers_.erase(it);
  }
  if (!failure.empty()) {
    onLog_("preamble listener: " + failure);
  } else if (port == 0 || port > 0xFFFF) {
    onLog_("preamble listener: port " + std::to_string(port) + " is not a TCP port");
    ::close(fd);
  } else {
    onPreamble_(fd, address, uint16_t(port));
  }
}

}  // namespace tsmuxd::tunnel
