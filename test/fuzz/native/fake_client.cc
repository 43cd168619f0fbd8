// The local end of a fuzzed connection (session_harness.h). Every byte it
// takes must be the next byte the peer sent, and every byte it writes is
// checked by the peer model when the session sends it.
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fuzz_check.h"
#include "session_harness.h"

namespace tsmuxd::fuzz {

namespace {
constexpr int kReadsPerTurn = 16;  // as FdPump: more waits for the next turn
}

void FakeTransport::send(core::OutPacket packet, bool) {
  if (!closed_) harness_.checkOutgoing(packet);
}

size_t FakeClient::take(const struct iovec* iov, int count) {
  size_t taken = 0;
  for (int i = 0; i < count && capacity_ > 0; ++i) {
    size_t n = std::min<uint64_t>(iov[i].iov_len, capacity_);
    auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
    for (size_t j = 0; j < n && !tainted_; ++j) {
      uint32_t offset = uint32_t(model_.takenByLocal + taken + j);
      FUZZ_CHECK(p[j] == patternByte(model_.salt, offset, false),
                 "local end got a wrong byte at stream offset %u", offset);
    }
    taken += n;
    capacity_ -= n;
    if (n < iov[i].iov_len) break;
  }
  model_.takenByLocal += taken;
  return taken;
}

size_t FakeClient::offer(const struct iovec* iov, int count) {
  // A socket still connecting is not writable (FdPump's writable_).
  if (closed_ || !decided_) return 0;
  return take(iov, count);
}

void FakeClient::finish() {
  if (closed_) return;
  finishing_ = true;
  poke();
}

void FakeClient::runDeferred() {
  if (closed_) return;
  if (!decided_) {
    decided_ = true;
    if (accept_) {
      conn_->localConnected();
    } else {
      conn_->localConnectFailed(ECONNREFUSED);
    }
    return;
  }
  if (closeWanted_ && !finishing_) {
    closeWanted_ = false;
    conn_->localEnded("local socket closed");  // it aborts us
    return;
  }
  pumpIn();
  if (!closed_) pumpOut();
}

void FakeClient::pumpIn() {
  core::ByteQueue& q = conn_->inbound();
  while (capacity_ > 0 && !q.empty()) {
    struct iovec iov[16];
    int count = q.gather(iov, 16);
    FUZZ_CHECK(count > 0, "a non-empty queue gathered nothing");
    size_t n = take(iov, count);
    conn_->consumed(n);
  }
  if (finishing_ && q.empty()) {
    closed_ = true;
    conn_->ioFinished();
  }
}

void FakeClient::pumpOut() {
  if (finishing_) return;
  for (int i = 0; i < kReadsPerTurn; ++i) {
    size_t room = conn_->sendable();
    if (room == 0) {
      conn_->blocked();
      return;
    }
    if (pendingOut_ == 0) return;
    size_t n = std::min<uint64_t>({room, conn_->maxPayload(), pendingOut_});
    FUZZ_CHECK(n > 0, "nothing to send with room %zu", room);
    core::OutPacket p = conn_->newDataPacket(n);
    uint8_t* out = p.data() + conn_->payloadOffset();
    // The stream offset of this packet's first byte, as the model counts it.
    uint32_t offset = model_.sessionNext - 1;
    for (size_t j = 0; j < n; ++j) out[j] = patternByte(model_.salt, offset + uint32_t(j), true);
    pendingOut_ -= n;
    conn_->sendData(std::move(p), n);
  }
  poke();  // more next turn
}

}  // namespace tsmuxd::fuzz
