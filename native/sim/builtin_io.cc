#include "sim/builtin_io.h"

#include <algorithm>
#include <cstring>

namespace tsmuxd::sim {

void BuiltinServiceIo::start(mux::Connection* conn) {
  conn_ = conn;
  loop_.defer(this);
}

size_t BuiltinServiceIo::offer(const struct iovec* iov, int count) {
  if (closed_ || finishing_ || !accepted_) return 0;
  size_t taken = 0;
  for (int i = 0; i < count; ++i) {
    size_t t = protocol_.consume(static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
    taken += t;
    if (t < iov[i].iov_len) break;
  }
  if (protocol_.hasOutput()) loop_.defer(this);
  return taken;
}

void BuiltinServiceIo::finish() {
  finishing_ = true;
  loop_.defer(this);
}

size_t BuiltinServiceIo::takeInbound() {
  core::ByteQueue& q = conn_->inbound();
  size_t total = 0;
  while (!q.empty() && protocol_.inputRoom() > 0) {
    struct iovec iov[16];
    int count = q.gather(iov, 16);
    size_t took = 0;
    for (int i = 0; i < count; ++i) {
      size_t t = protocol_.consume(static_cast<const uint8_t*>(iov[i].iov_base), iov[i].iov_len);
      took += t;
      if (t < iov[i].iov_len) break;
    }
    if (took == 0) break;
    conn_->consumed(took);
    total += took;
  }
  return total;
}

// Sends what the protocol has, in packets, while the peer's window has room;
// false when the window closed with output left (sendReady() resumes it).
bool BuiltinServiceIo::sendOutput() {
  while (protocol_.hasOutput()) {
    size_t room = conn_->sendable();
    if (room == 0) {
      conn_->blocked();
      return false;
    }
    size_t n = std::min({room, conn_->maxPayload(), protocol_.outSize()});
    core::OutPacket packet = conn_->newDataPacket(n);
    std::memcpy(packet.data() + conn_->payloadOffset(), protocol_.outData(), n);
    protocol_.sent(n);
    conn_->sendData(std::move(packet), n);
  }
  return true;
}

void BuiltinServiceIo::runDeferred() {
  if (closed_ || !conn_) return;
  if (!accepted_) {
    accepted_ = true;
    conn_->localConnected();
    return;
  }
  if (finishing_) {
    // The host is gone: what it sent is taken (nobody is left to answer),
    // then the connection may close.
    while (!conn_->inbound().empty()) {
      size_t n = conn_->inbound().size();
      conn_->consumed(n);
    }
    closed_ = true;
    conn_->ioFinished();
    return;
  }
  // An echo alternates: sending frees room to take more of what waits, and
  // taking more gives more to send. Stop when a round moves nothing, or the
  // peer's window closed (sendReady() comes back then).
  for (;;) {
    size_t took = takeInbound();
    size_t pending = protocol_.outSize();
    if (!sendOutput()) return;
    if (took == 0 && pending == 0) return;
  }
}

}  // namespace tsmuxd::sim
