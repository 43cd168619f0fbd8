#include "engine/socket_splice.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tsmuxd::engine {

SocketSplice::End::~End() {
  if (fd >= 0) ::close(fd);
}

void SocketSplice::End::onPoll(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable = true;
  splice.loop_.defer(&splice);
}

SocketSplice::SocketSplice(core::EventLoop& loop, uint32_t id, int clientFd, int phoneFd,
                           std::vector<uint8_t> toPhone, std::vector<uint8_t> toClient, Done done)
    : loop_(loop), id_(id), done_(std::move(done)) {
  client_ = std::make_unique<End>(*this, clientFd);
  phone_ = std::make_unique<End>(*this, phoneFd);
  up_.from = client_.get();
  up_.to = phone_.get();
  down_.from = phone_.get();
  down_.to = client_.get();
  up_.ring.resize(kSpliceBufferBytes);
  down_.ring.resize(kSpliceBufferBytes);
  preload(up_, std::move(toPhone));
  preload(down_, std::move(toClient));
  loop_.add(clientFd, client_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  loop_.add(phoneFd, phone_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  loop_.defer(this);
}

SocketSplice::~SocketSplice() { close(); }

void SocketSplice::preload(Direction& d, std::vector<uint8_t> bytes) {
  // The caller checked the length against kSpliceMaxEarlyBytes; a ring
  // smaller than that would be a bug, so grow it rather than drop bytes.
  if (bytes.empty()) return;  // memcpy from an empty vector's null data() is undefined (UBSan)
  if (bytes.size() > d.ring.size()) d.ring.resize(bytes.size());
  std::memcpy(d.ring.data(), bytes.data(), bytes.size());
  d.size = bytes.size();
}

void SocketSplice::close() {
  if (over_) return;
  over_ = true;
  loop_.cancelDeferred(this);
  for (End* e : {client_.get(), phone_.get()}) {
    if (e->fd < 0) continue;
    loop_.remove(e->fd);
    ::close(e->fd);
    e->fd = -1;
  }
}

void SocketSplice::runDeferred() {
  if (!over_) pump();
}

void SocketSplice::pump() {
  size_t upBudget = kSpliceBytesPerTurn;
  size_t downBudget = kSpliceBytesPerTurn;
  // Writes first: they make room for the reads behind them.
  for (int round = 0; round < 64; ++round) {
    size_t before = upBudget + downBudget;
    if (!flush(up_, upBudget) || !flush(down_, downBudget)) return;
    if (!fill(up_, upBudget) || !fill(down_, downBudget)) return;
    if (!flush(up_, upBudget) || !flush(down_, downBudget)) return;
    if (up_.finished && down_.finished) return finish("both ends closed");
    if (upBudget + downBudget == before) return;  // nothing moved: wait for the next edge
    if (upBudget == 0 || downBudget == 0) break;
  }
  loop_.defer(this);  // a turn's share is used up; the rest next turn
}

bool SocketSplice::flush(Direction& d, size_t& budget) {
  while (d.size > 0 && d.to->writable && budget > 0) {
    struct iovec iov[2];
    int count = 0;
    size_t first = std::min(d.size, d.ring.size() - d.head);
    iov[count++] = {d.ring.data() + d.head, first};
    if (first < d.size) iov[count++] = {d.ring.data(), d.size - first};
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(count);
    ssize_t n = sendmsg(d.to->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d.to->writable = false;
        break;
      }
      fail(std::string(d.to == client_.get() ? "write to the client failed: " : "write to the phone failed: ") +
           strerror(errno));
      return false;
    }
    size_t wrote = size_t(n);
    d.head = (d.head + wrote) % d.ring.size();
    d.size -= wrote;
    d.moved += wrote;
    budget -= std::min(budget, wrote);
    if (d.size == 0) d.head = 0;
  }
  if (d.size == 0 && d.from->eof && !d.finished) {
    // The source's EOF, passed on once everything before it is out.
    shutdown(d.to->fd, SHUT_WR);
    d.to->shutWritten = true;
    d.finished = true;
  }
  return true;
}

bool SocketSplice::fill(Direction& d, size_t& budget) {
  while (!d.from->eof && d.from->readable && d.size < d.ring.size() && budget > 0) {
    struct iovec iov[2];
    int count = 0;
    size_t tail = (d.head + d.size) % d.ring.size();
    size_t room = d.ring.size() - d.size;
    size_t first = std::min(room, d.ring.size() - tail);
    iov[count++] = {d.ring.data() + tail, first};
    if (first < room) iov[count++] = {d.ring.data(), room - first};
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(count);
    ssize_t n = recvmsg(d.from->fd, &msg, MSG_DONTWAIT);
    if (n > 0) {
      d.size += size_t(n);
      budget -= std::min(budget, size_t(n));
      continue;
    }
    if (n == 0) {
      d.from->eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      d.from->readable = false;
      break;
    }
    fail(std::string(d.from == client_.get() ? "read from the client failed: " : "read from the phone failed: ") +
         strerror(errno));
    return false;
  }
  return true;
}

void SocketSplice::fail(const std::string& reason) { finish(reason); }

void SocketSplice::finish(const std::string& reason) {
  if (over_) return;
  close();
  if (done_) {
    Done done = std::move(done_);
    done(*this, reason);
  }
}

}  // namespace tsmuxd::engine
