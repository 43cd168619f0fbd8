#include "core/acceptor.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace tsmuxd::core {

Acceptor::Acceptor(EventLoop& loop, int fd, OnAccept onAccept)
    : loop_(loop), fd_(fd), onAccept_(std::move(onAccept)) {
  loop_.add(fd_, this, EPOLLIN);
}

Acceptor::~Acceptor() { close(); }

void Acceptor::close() {
  if (closed_) return;
  closed_ = true;
  if (retryTimer_) loop_.cancelTimer(retryTimer_);
  retryTimer_ = 0;
  loop_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void Acceptor::comeBack(uint64_t delayMs) {
  if (retryTimer_ || closed_) return;
  retryTimer_ = loop_.addTimer(delayMs, [this] {
    retryTimer_ = 0;
    if (!closed_) onPoll(EPOLLIN);
  });
}

void Acceptor::onPoll(uint32_t) {
  for (int i = 0; i < kAcceptsPerTurn; ++i) {
    if (closed_) return;
    int fd = accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      onAccept_(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) comeBack(kRetryAfterMs);
    return;  // EAGAIN: the queue is empty
  }
  comeBack(0);  // more may be queued, and the edge has passed
}

}  // namespace tsmuxd::core
