#include "engine/socket_splice.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace tsmuxd::engine {

SocketSplice::SocketSplice(core::EventLoop& loop, uint32_t id, int clientFd, Far far, std::vector<uint8_t> toFar,
                           std::vector<uint8_t> toClient, Done done, Reply onReply, Secure onSecure)
    : loop_(loop), id_(id), done_(std::move(done)), onReply_(std::move(onReply)), onSecure_(std::move(onSecure)) {
  up_.ring.resize(kSpliceBufferBytes);
  down_.ring.resize(kSpliceBufferBytes);
  // The far end first: if the epoll set refuses the client's fd, the far
  // one is already owned (and closed) by its SpliceEnd.
  try {
    far_ = std::make_unique<SpliceEnd>(far.fd, std::move(far.tls), this, loop_);
  } catch (...) {
    if (clientFd >= 0) ::close(clientFd);
    throw;
  }
  if (clientFd >= 0) client_ = std::make_unique<SpliceEnd>(clientFd, nullptr, this, loop_);
  up_.from = client_.get();
  up_.to = far_.get();
  down_.from = far_.get();
  down_.to = client_.get();
  preload(up_, std::move(toFar));
  preload(down_, std::move(toClient));
  loop_.defer(this);
}

SocketSplice::~SocketSplice() { close(); }

void SocketSplice::preload(Direction& d, std::vector<uint8_t> bytes) {
  // The caller checked the length against kSpliceMaxEarlyBytes; a ring
  // smaller than that would be a bug, so grow it rather than drop bytes.
  if (bytes.empty()) return;  // memcpy from an empty vector's null data() is undefined (UBSan)
  if (d.size > 0) {
    // Behind what is held (attachClient after a dial): linearize, then append.
    std::vector<uint8_t> held(d.size);
    size_t first = std::min(d.size, d.ring.size() - d.head);
    std::memcpy(held.data(), d.ring.data() + d.head, first);
    if (first < d.size) std::memcpy(held.data() + first, d.ring.data(), d.size - first);
    held.insert(held.end(), bytes.begin(), bytes.end());
    bytes = std::move(held);
  }
  if (bytes.size() > d.ring.size()) d.ring.resize(bytes.size());
  std::memcpy(d.ring.data(), bytes.data(), bytes.size());
  d.head = 0;
  d.size = bytes.size();
}

bool SocketSplice::attachClient(int clientFd, std::vector<uint8_t> toFar) {
  if (over_ || stage_ != Stage::AwaitClient) return false;
  client_ = std::make_unique<SpliceEnd>(clientFd, nullptr, this, loop_);
  up_.from = client_.get();
  down_.to = client_.get();
  preload(up_, std::move(toFar));
  stage_ = Stage::Open;
  loop_.defer(this);
  return true;
}

void SocketSplice::close() {
  if (over_) return;
  over_ = true;
  loop_.cancelDeferred(this);
  if (drainTimer_) loop_.cancelTimer(drainTimer_);
  drainTimer_ = 0;
  if (client_) client_->close();
  if (far_) far_->close();
}

void SocketSplice::farGone(const std::string& reason) {
  if (over_ || farGone_) return;
  if (!client_ || stage_ != Stage::Open) return finish(reason);  // no client to tell yet
  farGone_ = true;
  goneReason_ = reason;
  far_->close();
  far_->eof = true;  // the down ring goes out, then the client's EOF
  up_.size = 0;
  up_.head = 0;
  up_.finished = true;  // nothing more goes that way: what the client sends is dropped
  drainTimer_ = loop_.addTimer(kFarGoneDrainMs, [this] {
    drainTimer_ = 0;
    finish(goneReason_ + "; the client did not close within " + std::to_string(kFarGoneDrainMs / 1000) + " s");
  });
  loop_.defer(this);
}

void SocketSplice::runDeferred() {
  if (!over_) pump();
}

const char* SocketSplice::farName() const { return far_->tls() || onReply_ ? "the remote" : "the phone"; }

void SocketSplice::pump() {
  if (stage_ == Stage::Handshake) {
    int h = far_->handshake();
    if (h < 0) return finish(far_->error());  // "TLS handshake failed (the peer's certificate: ...)"
    if (h == 0) return;  // the next edge goes on
    stage_ = onReply_ ? Stage::AwaitReply : Stage::Open;
    if (far_->tls() && onSecure_) onSecure_(*this, far_->describeTls());
  }
  if (!farGone_ && !far_->flushCipher()) return fail(*far_, "write to the remote failed");
  size_t upBudget = kSpliceBytesPerTurn;
  size_t downBudget = kSpliceBytesPerTurn;
  if (stage_ == Stage::AwaitReply) {
    if (!flush(up_, upBudget)) return;  // the Connect request
    if (!readReply()) return;
  }
  if (stage_ == Stage::AwaitClient) return;
  if (stage_ != Stage::Open) return;
  // Writes first: they make room for the reads behind them.
  for (int round = 0; round < 64; ++round) {
    size_t before = upBudget + downBudget;
    if (!flush(up_, upBudget) || !flush(down_, downBudget)) return;
    if (!fill(up_, upBudget) || !fill(down_, downBudget)) return;
    if (!flush(up_, upBudget) || !flush(down_, downBudget)) return;
    if (up_.finished && down_.finished && (!farGone_ || client_->eof)) return finish(farGone_ ? goneReason_ : "both ends closed");
    if (upBudget + downBudget == before) return;  // nothing moved: wait for the next edge
    if (upBudget == 0 || downBudget == 0) break;
  }
  loop_.defer(this);  // a turn's share is used up; the rest next turn
}

bool SocketSplice::readReply() {
  size_t needed = kUsbmuxHeaderBytes;
  for (;;) {
    if (reply_.size() >= kUsbmuxHeaderBytes) {
      uint32_t length = uint32_t(reply_[0]) | uint32_t(reply_[1]) << 8 | uint32_t(reply_[2]) << 16 |
                        uint32_t(reply_[3]) << 24;
      if (length < kUsbmuxHeaderBytes || length > kSpliceMaxReply) {
        finish("the remote's answer to Connect claims " + std::to_string(length) + " bytes (at most " +
               std::to_string(kSpliceMaxReply) + ")");
        return false;
      }
      needed = length;
    }
    if (reply_.size() == needed) break;
    size_t have = reply_.size();
    reply_.resize(needed);
    struct iovec iov = {reply_.data() + have, needed - have};
    ssize_t n = far_->readv(&iov, 1);
    reply_.resize(have + (n > 0 ? size_t(n) : 0));
    if (n == SpliceEnd::kWouldBlock) return true;
    if (n == SpliceEnd::kFailed) {
      fail(*far_, "read from the remote failed");
      return false;
    }
    if (n == 0) {
      finish("the remote closed before answering the Connect");
      return false;
    }
  }
  stage_ = Stage::AwaitClient;
  std::vector<uint8_t> message = std::move(reply_);
  reply_.clear();
  if (onReply_) onReply_(*this, std::move(message));
  return true;
}

bool SocketSplice::flush(Direction& d, size_t& budget) {
  if (!d.to || d.finished) return true;
  while (d.size > 0 && d.to->writable && budget > 0) {
    struct iovec iov[2];
    int count = 0;
    size_t first = std::min(d.size, d.ring.size() - d.head);
    iov[count++] = {d.ring.data() + d.head, first};
    if (first < d.size) iov[count++] = {d.ring.data(), d.size - first};
    ssize_t n = d.to->writev(iov, count);
    if (n == SpliceEnd::kWouldBlock) break;
    if (n == SpliceEnd::kFailed) {
      fail(*d.to, d.to == client_.get() ? "write to the client failed" : "write to the far end failed");
      return false;
    }
    size_t wrote = size_t(n);
    d.head = (d.head + wrote) % d.ring.size();
    d.size -= wrote;
    d.moved += wrote;
    budget -= std::min(budget, wrote);
    if (d.size == 0) d.head = 0;
  }
  if (d.size == 0 && d.from && d.from->eof && !d.finished) {
    // The source's EOF, passed on once everything before it is out.
    int shut = d.to->shutWrite();
    if (shut < 0) {
      fail(*d.to, "closing towards the far end failed");
      return false;
    }
    d.finished = shut > 0;
  }
  return true;
}

bool SocketSplice::fill(Direction& d, size_t& budget) {
  if (!d.from || !d.to) return true;
  while (!d.from->eof && d.from->readable && d.size < d.ring.size() && budget > 0) {
    struct iovec iov[2];
    int count = 0;
    size_t tail = (d.head + d.size) % d.ring.size();
    size_t room = d.ring.size() - d.size;
    size_t first = std::min(room, d.ring.size() - tail);
    iov[count++] = {d.ring.data() + tail, first};
    if (first < room) iov[count++] = {d.ring.data(), room - first};
    ssize_t n = d.from->readv(iov, count);
    if (n > 0 && farGone_ && &d == &up_) {
      budget -= std::min(budget, size_t(n));  // read and dropped: the far end is gone
      continue;
    }
    if (n > 0) {
      d.size += size_t(n);
      budget -= std::min(budget, size_t(n));
      continue;
    }
    if (n == 0) {
      d.from->eof = true;
      break;
    }
    if (n == SpliceEnd::kWouldBlock) break;
    fail(*d.from, d.from == client_.get() ? "read from the client failed" : "read from the far end failed");
    return false;
  }
  return true;
}

void SocketSplice::fail(const SpliceEnd& end, const char* what) {
  std::string text = what;
  // "the far end" in the generic messages is the phone or the remote.
  if (size_t at = text.find("the far end"); at != std::string::npos) text.replace(at, 11, farName());
  if (!end.error().empty()) text += ": " + end.error();
  // The far end's failure is not the client's: it gets what came, then EOF.
  if (&end == far_.get()) return farGone(text);
  finish(text);
}

void SocketSplice::finish(const std::string& reason) {
  if (over_) return;
  close();
  if (done_) {
    Done done = std::move(done_);
    done(*this, reason);
  }
}

}  // namespace tsmuxd::engine
