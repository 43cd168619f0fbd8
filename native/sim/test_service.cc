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
#include <random>
#include <vector>

#include "sim/sha256.h"

namespace tsmuxd::sim {
namespace {

constexpr size_t kChunk = 256 << 10;
constexpr uint64_t kUnhashed = uint64_t(1) << 63;
constexpr size_t kDigestLength = 32;

// One fixed random block: what an unhashed source sends, over and over.
const std::vector<uint8_t>& fixedBlock() {
  static const std::vector<uint8_t> block = [] {
    std::vector<uint8_t> b(kChunk);
    std::mt19937_64 rng(std::random_device{}());
    for (size_t i = 0; i < b.size(); i += 8) {
      uint64_t v = rng();
      memcpy(b.data() + i, &v, std::min<size_t>(8, b.size() - i));
    }
    return b;
  }();
  return block;
}

}  // namespace

// One accepted connection. Edge-triggered: it reads until EAGAIN, and stops
// reading while it has output the socket will not take (an echo peer that
// does not read, or a source's stream), so memory stays bounded.
class TestServiceConn : public pipe::Pollable {
 public:
  TestServiceConn(TestServiceListener& owner, TestServiceKind kind, int fd)
      : owner_(owner), kind_(kind), fd_(fd), in_(kChunk) {}
  ~TestServiceConn() override { closeFd(); }

  void onPoll(uint32_t events) override {
    if (events & (EPOLLERR)) return fail();
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
      if (streamLeft_ > 0 || digestDue_) {
        produce();
        continue;
      }
      if (!readable_) return;
      ssize_t n = ::read(fd_, in_.data(), in_.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          readable_ = false;
          return;
        }
        if (errno == EINTR) continue;
        return fail();
      }
      if (n == 0) return fail();  // the peer closed: so do we
      consume(in_.data(), size_t(n));
    }
  }

  void consume(const uint8_t* p, size_t n) {
    if (kind_ == TestServiceKind::Echo) {
      out_.assign(p, p + n);
      outAt_ = 0;
      return;
    }
    while (n > 0) {
      if (remaining_ == 0 && !inBody_) {
        size_t take = std::min(n, sizeof header_ - headerLen_);
        memcpy(header_ + headerLen_, p, take);
        headerLen_ += take;
        p += take;
        n -= take;
        if (headerLen_ < sizeof header_) return;
        headerLen_ = 0;
        uint64_t request = 0;
        for (uint8_t b : header_) request = request << 8 | b;
        hashed_ = (request & kUnhashed) == 0;
        if (hashed_) hash_ = Sha256();
        uint64_t length = request & ~kUnhashed;
        if (kind_ == TestServiceKind::Source) {
          // One request at a time; bytes behind it are ignored, as in JS.
          streamLeft_ = length;
          digestDue_ = true;
          return;
        }
        remaining_ = length;
        inBody_ = true;
        if (remaining_ == 0) answer();
        continue;
      }
      size_t take = size_t(std::min<uint64_t>(n, remaining_));
      if (hashed_) hash_.update(p, take);
      p += take;
      n -= take;
      remaining_ -= take;
      if (remaining_ == 0) answer();
    }
  }

  // The sink's answer to one complete request.
  void answer() {
    inBody_ = false;
    appendDigest();
  }

  void appendDigest() {
    if (hashed_) {
      auto d = hash_.digest();
      out_.insert(out_.end(), d.begin(), d.end());
    } else {
      out_.insert(out_.end(), kDigestLength, 0);
    }
  }

  // The source: the next chunk of the stream, then its digest.
  void produce() {
    out_.clear();
    outAt_ = 0;
    if (streamLeft_ > 0) {
      size_t n = size_t(std::min<uint64_t>(streamLeft_, kChunk));
      if (hashed_) {
        out_.resize(n);
        for (size_t i = 0; i < n; i += 8) {
          uint64_t v = rng_();
          memcpy(out_.data() + i, &v, std::min<size_t>(8, n - i));
        }
        hash_.update(out_.data(), n);
      } else {
        const auto& block = fixedBlock();
        out_.assign(block.begin(), block.begin() + ptrdiff_t(n));
      }
      streamLeft_ -= n;
      return;
    }
    digestDue_ = false;
    appendDigest();
  }

  // Writes what is queued; false while some is left (the socket is full).
  bool flush() {
    while (outAt_ < out_.size()) {
      if (!writable_) return false;
      ssize_t n = ::send(fd_, out_.data() + outAt_, out_.size() - outAt_, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          writable_ = false;
          return false;
        }
        if (errno == EINTR) continue;
        fail();
        return false;
      }
      outAt_ += size_t(n);
    }
    out_.clear();
    outAt_ = 0;
    return true;
  }

  void fail() {
    if (closed_) return;
    closeFd();
    owner_.connectionClosed(this);
  }

  TestServiceListener& owner_;
  TestServiceKind kind_;
  int fd_;
  bool readable_ = true;
  bool writable_ = true;
  std::vector<uint8_t> in_;
  std::vector<uint8_t> out_;
  size_t outAt_ = 0;
  uint8_t header_[8] = {};
  size_t headerLen_ = 0;
  bool inBody_ = false;
  uint64_t remaining_ = 0;
  uint64_t streamLeft_ = 0;
  bool digestDue_ = false;
  bool hashed_ = false;
  Sha256 hash_;
  std::mt19937_64 rng_{std::random_device{}()};
};

std::shared_ptr<TestServiceListener> TestServiceListener::open(pipe::EventLoop& loop, TestServiceKind kind,
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

TestServiceListener::TestServiceListener(pipe::EventLoop& loop, TestServiceKind kind, int fd, std::string path)
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
