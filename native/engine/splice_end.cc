#include "engine/splice_end.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsmuxd::engine {

SpliceEnd::SpliceEnd(int fd, std::unique_ptr<tunnel::TlsChannel> tls, core::Deferred* wake, core::EventLoop& loop)
    : fd_(fd), tls_(std::move(tls)), wake_(wake), loop_(loop) {
  if (tls_) {
    cipherIn_.resize(kTlsReadChunk);
    cipherOut_.resize(kTlsCipherOut);
  } else {
    secure_ = true;  // nothing to negotiate
  }
  try {
    loop_.add(fd_, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  } catch (...) {
    ::close(fd_);  // ours from the call, whatever happens
    fd_ = -1;
    throw;
  }
}

SpliceEnd::~SpliceEnd() { close(); }

void SpliceEnd::close() {
  if (fd_ < 0) return;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void SpliceEnd::onPoll(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
  loop_.defer(wake_);
}

ssize_t SpliceEnd::fail(const std::string& what) {
  if (error_.empty()) error_ = what;
  return kFailed;
}

int SpliceEnd::handshake() {
  if (secure_) return 1;
  for (;;) {
    tunnel::TlsChannel::Progress p = tls_->handshake();
    // Our flight (or the alert that says why we refuse) goes out either way.
    bool flushed = flushCipher();
    if (p == tunnel::TlsChannel::Progress::Failed) {
      fail(tls_->error());
      return -1;
    }
    if (!flushed) return -1;
    if (p == tunnel::TlsChannel::Progress::Ready) {
      secure_ = true;
      return 1;
    }
    if (!readable) return 0;
    ssize_t got = pullCipher();
    if (got == kFailed) return -1;
    if (got == kWouldBlock) return 0;
    if (got == 0) {
      fail("the peer closed the connection during the TLS handshake");
      return -1;
    }
  }
}

ssize_t SpliceEnd::pullCipher() {
  for (;;) {
    ssize_t n = recv(fd_, cipherIn_.data(), cipherIn_.size(), MSG_DONTWAIT);
    if (n > 0) {
      tls_->feed(cipherIn_.data(), size_t(n));
      return n;
    }
    if (n == 0) {
      cipherEof_ = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable = false;
      return kWouldBlock;
    }
    return fail(strerror(errno));
  }
}

ssize_t SpliceEnd::readTls(uint8_t* out, size_t cap) {
  for (;;) {
    long n = tls_->read(out, cap);
    if (n > 0) return n;
    if (n < 0) {
      if (tls_->peerClosed()) return 0;
      return fail(tls_->error());
    }
    // Reading may have made output (a KeyUpdate's answer).
    if (tls_->pendingOutput() > 0 && !flushCipher()) return kFailed;
    if (cipherEof_) return 0;  // FIN without close_notify: the stream ends here
    ssize_t got = pullCipher();
    if (got < 0) return got;
  }
}

ssize_t SpliceEnd::readv(const struct iovec* iov, int count) {
  if (tls_) return readTls(static_cast<uint8_t*>(iov[0].iov_base), iov[0].iov_len);
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = size_t(count);
  for (;;) {
    ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      readable = false;
      return kWouldBlock;
    }
    return fail(strerror(errno));
  }
}

ssize_t SpliceEnd::writev(const struct iovec* iov, int count) {
  if (tls_) {
    if (!flushCipher()) return kFailed;
    if (hasPendingCipher()) return kWouldBlock;
    size_t n = std::min(iov[0].iov_len, kTlsWriteChunk);
    if (!tls_->write(static_cast<const uint8_t*>(iov[0].iov_base), n)) return fail(tls_->error());
    if (!flushCipher()) return kFailed;
    return ssize_t(n);  // taken: encrypted, and sent or waiting in cipherOut_
  }
  struct msghdr msg {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = size_t(count);
  for (;;) {
    ssize_t n = sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      writable = false;
      return kWouldBlock;
    }
    return fail(strerror(errno));
  }
}

bool SpliceEnd::flushCipher() {
  if (!tls_) return true;
  while (writable) {
    if (cipherSize_ == 0) {
      cipherHead_ = 0;
      cipherSize_ = tls_->takeOutput(cipherOut_.data(), cipherOut_.size());
      if (cipherSize_ == 0) return true;
    }
    ssize_t n = send(fd_, cipherOut_.data() + cipherHead_, cipherSize_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writable = false;
        return true;
      }
      fail(strerror(errno));
      return false;
    }
    cipherHead_ += size_t(n);
    cipherSize_ -= size_t(n);
  }
  return true;
}

int SpliceEnd::shutWrite() {
  if (shutWritten) return 1;
  if (tls_ && !closeNotifySent_) {
    tls_->closeWrites();
    closeNotifySent_ = true;
  }
  if (!flushCipher()) return -1;
  if (hasPendingCipher()) return 0;
  shutdown(fd_, SHUT_WR);
  shutWritten = true;
  return 1;
}

std::string SpliceEnd::describeTls() const { return tls_ ? tls_->describe() : "plain TCP"; }

}  // namespace tsmuxd::engine
