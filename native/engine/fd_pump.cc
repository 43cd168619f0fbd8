#include "engine/fd_pump.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsmuxd::engine {

namespace {
constexpr int kReadsPerTurn = 16;
constexpr int kMaxPacketsPerRead = 4;
constexpr int kMaxIov = 64;
}  // namespace

FdPump::FdPump(core::EventLoop& loop, int fd, bool connecting)
    : loop_(loop), fd_(fd), connecting_(connecting) {
  loop_.add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
}

FdPump::~FdPump() { closeFd(); }

void FdPump::closeFd() {
  if (closed_) return;
  closed_ = true;
  loop_.cancelDeferred(this);
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void FdPump::connectDone(int error) {
  connectResult_ = error;
  loop_.defer(this);
}

void FdPump::onPoll(uint32_t events) {
  if (connecting_) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    connectDone(err);
    return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hungUp_ = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  if (writable_) pumpIn();
  if (readable_ && !closed_) discarding_ ? discardInput() : pumpOut();
}

void FdPump::runDeferred() {
  if (closed_ || !conn_) return;
  if (connectResult_ >= 0) {
    int err = connectResult_;
    connectResult_ = -1;
    connecting_ = false;
    if (err == 0) {
      writable_ = true;
      conn_->localConnected();
    } else {
      conn_->localConnectFailed(err);
    }
    return;
  }
  if (!failure_.empty()) {
    std::string why;
    why.swap(failure_);
    conn_->localEnded(why);
    return;
  }
  pumpIn();
  if (!closed_ && readable_) discarding_ ? discardInput() : pumpOut();
}

void FdPump::localFailed(const std::string& reason) {
  // Reported later: we may be deep inside the connection's own input path.
  if (failure_.empty()) failure_ = reason;
  readable_ = writable_ = false;
  loop_.defer(this);
}

void FdPump::greet(std::vector<uint8_t> bytes) {
  greeting_ = std::move(bytes);
  greetingSent_ = 0;
  // A fresh client socket nearly always takes a few hundred bytes; if it
  // does not, EAGAIN clears writable_ and the EPOLLOUT edge resumes.
  writable_ = true;
  flushGreeting();
}

bool FdPump::flushGreeting() {
  while (greetingSent_ < greeting_.size()) {
    ssize_t n = send(fd_, greeting_.data() + greetingSent_, greeting_.size() - greetingSent_,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      greetingSent_ += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
      writable_ = false;
    } else {
      localFailed(std::string("write to local socket failed: ") + strerror(errno));
    }
    return false;
  }
  if (!greeting_.empty()) {
    greeting_.clear();
    greeting_.shrink_to_fit();
    greetingSent_ = 0;
  }
  return true;
}

size_t FdPump::offer(const struct iovec* iov, int count) {
  if (closed_ || !writable_ || !failure_.empty() || !flushGreeting()) return 0;
  count = std::min(count, kMaxIov);
  size_t len = 0;
  for (int i = 0; i < count; ++i) len += iov[i].iov_len;
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = size_t(count);
  ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n >= 0) {
    if (size_t(n) < len) writable_ = false;
    return size_t(n);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    writable_ = false;
  } else if (errno != EINTR) {
    localFailed(std::string("write to local socket failed: ") + strerror(errno));
  }
  return 0;
}

void FdPump::inboundReady() {
  if (!closed_ && writable_) loop_.defer(this);
}

bool FdPump::outputWaiting() {
  if (closed_ || finishing_) return false;
  if (pipelinedSent_ < pipelined_.size()) return true;
  // Asked rarely (when the zero-window limit expires), so a peek is cheap
  // enough, and readable_ cannot say: sendReady() sets it on a guess.
  uint8_t byte;
  return recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

void FdPump::sendReady() {
  if (closed_ || connecting_) return;
  // Nothing may be readable yet: read once anyway, the edge may have passed.
  readable_ = true;
  loop_.defer(this);
}

void FdPump::finish() {
  if (closed_) return;
  finishing_ = true;
  readable_ = false;
  loop_.defer(this);
}

void FdPump::abort() { closeFd(); }

void FdPump::pumpIn() {
  if (closed_ || !conn_ || !failure_.empty() || !flushGreeting()) return;
  core::ByteQueue& q = conn_->inbound();
  while (writable_ && !q.empty()) {
    struct iovec iov[kMaxIov];
    int count = q.gather(iov, kMaxIov);
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(count);
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writable_ = false;
        break;
      }
      localFailed(std::string("write to local socket failed: ") + strerror(errno));
      return;
    }
    conn_->consumed(size_t(n));
  }
  if (finishing_ && q.empty() && !discarding_) {
    // End of file after the peer's last byte. Closing now, with bytes the
    // local end sent still unread, would make the kernel answer them with a
    // reset: the client would see ECONNRESET, not EOF. So its further bytes
    // are read and dropped until it closes (bounded by the connection's
    // drain timeout).
    shutdown(fd_, SHUT_WR);
    discarding_ = true;
    readable_ = true;
    discardInput();
  }
}

void FdPump::discardInput() {
  uint8_t scratch[16384];
  for (int i = 0; i < kReadsPerTurn; ++i) {
    ssize_t n = recv(fd_, scratch, sizeof scratch, MSG_DONTWAIT);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    // 0: the local end closed; an error: it is gone just the same.
    closeFd();
    conn_->ioFinished();
    return;
  }
  loop_.defer(this);  // more next turn
}

size_t FdPump::sendPipelined(size_t room) {
  size_t left = pipelined_.size() - pipelinedSent_;
  size_t n = std::min({left, room, conn_->maxPayload()});
  core::OutPacket p = conn_->newDataPacket(n);
  std::memcpy(p.data() + conn_->payloadOffset(), pipelined_.data() + pipelinedSent_, n);
  conn_->sendData(std::move(p), n);
  pipelinedSent_ += n;
  if (pipelinedSent_ == pipelined_.size()) {
    pipelined_.clear();
    pipelined_.shrink_to_fit();
    pipelinedSent_ = 0;
  }
  return n;
}

void FdPump::pumpOut() {
  if (closed_ || !conn_ || finishing_ || !failure_.empty()) return;
  for (int i = 0; i < kReadsPerTurn; ++i) {
    size_t room = conn_->sendable();
    if (room == 0) {
      conn_->blocked();
      return;
    }
    if (!pipelined_.empty()) {
      sendPipelined(room);
      continue;
    }
    if (!readable_) return;
    // One read fills several packets in place: syscalls are the cost here.
    const size_t perPacket = conn_->maxPayload();
    const size_t offset = conn_->payloadOffset();
    core::OutPacket packets[kMaxPacketsPerRead];
    struct iovec iov[kMaxPacketsPerRead];
    int count = 0;
    for (size_t planned = 0; planned < room && count < kMaxPacketsPerRead; ++count) {
      size_t size = std::min(perPacket, room - planned);
      packets[count] = conn_->newDataPacket(size);
      iov[count].iov_base = packets[count].data() + offset;
      iov[count].iov_len = size;
      planned += size;
    }
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(count);
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n > 0) {
      size_t left = size_t(n);
      size_t asked = 0;
      for (int p = 0; p < count; ++p) asked += iov[p].iov_len;
      for (int p = 0; p < count && left > 0; ++p) {
        size_t take = std::min(left, iov[p].iov_len);
        conn_->sendData(std::move(packets[p]), take);
        left -= take;
      }
      // A short read emptied the socket; the next arrival raises a new edge,
      // so skip the read that would only say EAGAIN. Not once the peer has
      // hung up: its EOF raises no further edge.
      if (size_t(n) < asked && !hungUp_) {
        readable_ = false;
        return;
      }
      continue;
    }
    if (n == 0) {
      readable_ = false;
      conn_->localEnded("local socket closed");
      return;
    }
    if (errno == EINTR) continue;
    readable_ = false;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      localFailed(std::string("read from local socket failed: ") + strerror(errno));
    }
    return;
  }
  if (readable_ || !pipelined_.empty()) loop_.defer(this);  // more next turn
}

}  // namespace tsmuxd::engine
