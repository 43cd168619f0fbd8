#include "usb/cable.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/stats.h"

namespace tsmuxd::usb {

namespace {
constexpr int kReadRounds = 8;  // recvmmsg calls per turn before other fds get a go
constexpr int kBatch = 64;       // transfers per sendmmsg

bool fillAddress(const std::string& path, sockaddr_un& addr, std::string& error) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    error = "cable path is empty or longer than " + std::to_string(sizeof addr.sun_path - 1);
    return false;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}
}  // namespace

void CableTransport::tuneSocket(int fd) {
  // A deep send queue lets several 48 KiB transfers be in flight, as with
  // several libusb transfers submitted at once.
  int size = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
}

int CableTransport::connectPath(const std::string& path, std::string& error) {
  sockaddr_un addr;
  if (!fillAddress(path, addr, error)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = "connect " + path + ": " + strerror(errno);
    ::close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  tuneSocket(fd);
  return fd;
}

namespace {

// True when `path` is a socket file that refuses connections: left behind,
// safe to replace. Anything else (a live listener, a regular file) stays.
bool isStaleSocket(const std::string& path, const sockaddr_un& addr) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  bool refused = ::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
                 errno == ECONNREFUSED;
  ::close(probe);
  return refused;
}

}  // namespace

int CableTransport::listenPath(const std::string& path, std::string& error) {
  sockaddr_un addr;
  if (!fillAddress(path, addr, error)) return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = std::string("socket: ") + strerror(errno);
    return -1;
  }
  int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (bound != 0 && errno == EADDRINUSE && isStaleSocket(path, addr)) {
    // A daemon that died (or stopped) left its socket file; nobody listens.
    ::unlink(path.c_str());
    bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (bound != 0 || listen(fd, 64) != 0) {
    error = "listen " + path + ": " + strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

CableTransport::CableTransport(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats,
                               int fd)
    : loop_(loop), pool_(pool), stats_(stats), fd_(fd), rxbuf_(new uint8_t[kMaxTransfer * kRxSlots]) {
  loop_.add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

CableTransport::~CableTransport() { close(); }

void CableTransport::close() {
  if (closed_) return;
  closed_ = true;
  loop_.cancelDeferred(this);
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
  queue_.clear();
  queuedBytes_ = 0;
}

void CableTransport::fail(const Fault& why) {
  if (closed_) return;
  close();
  if (handler_) handler_->onTransportClosed(why);
}

void CableTransport::setReading(bool on) {
  reading_ = on;
  if (!on || closed_) return;
  deliverBatch();
  if (readable_ && rxNext_ >= rxCount_) readSome();
}

void CableTransport::onPoll(uint32_t events) {
  if (events & EPOLLOUT) {
    writable_ = true;
    flush();
  }
  if (closed_) return;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) peerClosed_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (reading_ && readable_ && rxNext_ >= rxCount_) readSome();
}

bool CableTransport::peerHungUp() const {
  struct pollfd p {fd_, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void CableTransport::readSome() {
  for (int round = 0; round < kReadRounds && reading_ && !closed_; ++round) {
    struct mmsghdr msgs[kRxSlots];
    struct iovec iovs[kRxSlots];
    std::memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < kRxSlots; ++i) {
      iovs[i].iov_base = rxbuf_.get() + size_t(i) * kMaxTransfer;
      iovs[i].iov_len = kMaxTransfer;
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd_, msgs, kRxSlots, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        readable_ = false;
        return;
      }
      // The other end closing with our data unread resets the socket: an unplug.
      bool gone = errno == ECONNRESET || errno == EPIPE;
      fail(Fault(gone ? codes::kUnplugged : codes::kCableIo,
                 std::string("cable read failed: ") + strerror(errno)));
      return;
    }
    for (int i = 0; i < n; ++i) {
      rxLen_[i] = msgs[i].msg_len;
      rxFlags_[i] = msgs[i].msg_hdr.msg_flags;
    }
    rxCount_ = n;
    rxNext_ = 0;
    // At end of file every read returns 0, so recvmmsg fills every slot. A
    // full batch ending in a zero length may be that; ask the socket.
    if (n == kRxSlots && rxLen_[n - 1] == 0 && !peerClosed_) peerClosed_ = peerHungUp();
    deliverBatch();
    if (rxNext_ < rxCount_) return;  // paused mid-batch
    // A short batch drained the queue; the next arrival raises a new edge.
    if (n < kRxSlots) {
      readable_ = false;
      return;
    }
  }
  // Budget spent with input left: come back at the end of this turn.
  if (reading_ && readable_ && !closed_) loop_.defer(this);
}

void CableTransport::deliverBatch() {
  // An empty message and end-of-file read the same. Once the peer has hung
  // up, zero lengths with no data after them are EOF; zeros before data are
  // real ZLPs.
  int lastData = -1;
  for (int i = rxNext_; i < rxCount_; ++i) {
    if (rxLen_[i] > 0) lastData = i;
  }
  while (rxNext_ < rxCount_ && reading_ && !closed_) {
    int i = rxNext_++;
    size_t len = rxLen_[i];
    if (rxFlags_[i] & MSG_TRUNC) {
      fail(Fault(codes::kOversizeTransfer, "cable transfer larger than " +
                                               std::to_string(kMaxTransfer) + " bytes"));
      return;
    }
    if (len == 0 && peerClosed_ && i > lastData) {
      fail(Fault(codes::kUnplugged, "cable closed by the other end"));
      return;
    }
    EngineStats::add(len == 0 ? stats_.zlpsIn : stats_.transfersIn, 1);
    EngineStats::add(stats_.usbBytesIn, len);
    if (handler_) handler_->onTransfer(rxbuf_.get() + size_t(i) * kMaxTransfer, len);
  }
  if (handler_ && !closed_) handler_->onTransferBatchEnd();
}

void CableTransport::send(core::OutPacket packet, bool zlp) {
  if (closed_) return;
  size_t len = packet.size();
  queuedBytes_ += len;
  queue_.push_back(std::move(packet));
  if (zlp && len > 0 && len % maxPacketSize_ == 0) queue_.emplace_back();
  if (queuedBytes_ >= kHighWater) aboveHighWater_ = true;
  loop_.defer(this);
}

void CableTransport::runDeferred() {
  if (closed_) return;
  flush();
  if (!closed_ && reading_ && readable_ && rxNext_ >= rxCount_) readSome();
}

void CableTransport::flush() {
  while (writable_ && !queue_.empty() && !closed_) {
    struct mmsghdr msgs[kBatch];
    struct iovec iovs[kBatch];
    int n = 0;
    for (auto it = queue_.begin(); it != queue_.end() && n < kBatch; ++it, ++n) {
      iovs[n].iov_base = it->data();
      iovs[n].iov_len = it->size();
      std::memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_iov = &iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(fd_, msgs, unsigned(n), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writable_ = false;
        break;
      }
      if (errno == EINTR) continue;
      fail(Fault(codes::kUnplugged, std::string("cable write failed: ") + strerror(errno)));
      return;
    }
    for (int i = 0; i < sent; ++i) {
      size_t len = queue_.front().size();
      queuedBytes_ -= len;
      EngineStats::add(len == 0 ? stats_.zlpsOut : stats_.transfersOut, 1);
      EngineStats::add(stats_.usbBytesOut, len);
      queue_.pop_front();
    }
    if (sent < n) writable_ = false;
  }
  if (aboveHighWater_ && queuedBytes_ <= kLowWater && !closed_) {
    aboveHighWater_ = false;
    if (handler_) handler_->onTransportDrained();
  }
}

}  // namespace tsmuxd::usb
