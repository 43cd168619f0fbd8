#include "usb/ffs.h"

#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/stats.h"

namespace tsmuxd::usb {

namespace {

// glibc has no wrappers for the kernel's native AIO (libaio is a separate
// library we do not need for four calls).
long ioSetup(unsigned nr, aio_context_t* ctx) { return syscall(__NR_io_setup, nr, ctx); }
long ioDestroy(aio_context_t ctx) { return syscall(__NR_io_destroy, ctx); }
long ioSubmit(aio_context_t ctx, long n, struct iocb** cbs) {
  return syscall(__NR_io_submit, ctx, n, cbs);
}
long ioGetEvents(aio_context_t ctx, long minNr, long nr, struct io_event* events, struct timespec* t) {
  return syscall(__NR_io_getevents, ctx, minNr, nr, events, t);
}

// aio_data: the slot index, with this bit set for IN (write) slots.
constexpr uint64_t kWriteTag = uint64_t(1) << 32;
uint8_t zlpByte = 0;  // a valid address for zero-length writes

void prepare(struct iocb& cb, int fd, uint16_t opcode, void* buf, size_t len, uint64_t tag, int efd) {
  std::memset(&cb, 0, sizeof cb);
  cb.aio_fildes = uint32_t(fd);
  cb.aio_lio_opcode = opcode;
  cb.aio_buf = uint64_t(reinterpret_cast<uintptr_t>(buf));
  cb.aio_nbytes = len;
  cb.aio_offset = 0;
  cb.aio_data = tag;
  cb.aio_flags = IOCB_FLAG_RESFD;  // completions bump the eventfd in our epoll set
  cb.aio_resfd = uint32_t(efd);
}

}  // namespace

std::unique_ptr<FfsTransport> FfsTransport::create(core::EventLoop& loop, core::BufferPool& pool,
                                                   EngineStats& stats, int outFd, int inFd,
                                                   uint16_t maxPacketSize, std::string& error) {
  std::unique_ptr<FfsTransport> t(new FfsTransport(loop, pool, stats, outFd, inFd, maxPacketSize));
  t->eventFd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (t->eventFd_ < 0) {
    error = std::string("eventfd: ") + strerror(errno);
    return nullptr;
  }
  if (ioSetup(kRxSlots + kTxSlots, &t->ctx_) != 0) {
    error = std::string("io_setup: ") + strerror(errno);
    t->ctx_ = 0;
    return nullptr;
  }
  loop.add(t->eventFd_, t.get(), EPOLLIN);
  return t;
}

FfsTransport::FfsTransport(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats,
                           int outFd, int inFd, uint16_t maxPacketSize)
    : Transport(maxPacketSize),
      loop_(loop),
      pool_(pool),
      stats_(stats),
      outFd_(outFd),
      inFd_(inFd),
      rxbuf_(new uint8_t[kReadSize * kRxSlots]) {}

FfsTransport::~FfsTransport() { close(); }

void FfsTransport::close() {
  if (closed_) return;
  closed_ = true;
  loop_.cancelDeferred(this);
  if (eventFd_ >= 0) loop_.remove(eventFd_);
  // io_destroy cancels the requests still queued (FunctionFS dequeues them
  // from the controller) and waits until none can touch our buffers any
  // more. It blocks only as long as the controller takes to dequeue.
  if (ctx_) ioDestroy(ctx_);
  ctx_ = 0;
  if (eventFd_ >= 0) ::close(eventFd_);
  eventFd_ = -1;
  for (auto& s : tx_) {
    s.packet = core::OutPacket();
    s.busy = false;
  }
  txBusy_ = 0;
  queue_.clear();
  queuedBytes_ = 0;
}

Fault FfsTransport::faultFor(long long err, const char* what) {
  // Requests the controller threw back because the endpoint went away: the
  // host set another configuration, or the UDC was unbound. EAGAIN is the
  // same thing seen at submission (the endpoint files are O_NONBLOCK).
  if (err == ESHUTDOWN || err == ECONNRESET || err == ENODEV || err == EAGAIN) {
    return Fault(codes::kUnplugged, std::string(what) + " endpoint disabled (" + strerror(int(err)) +
                                        "): the host unconfigured us or the UDC was unbound");
  }
  return Fault(codes::kFfsIo, std::string(what) + " request failed: " + strerror(int(err)));
}

void FfsTransport::fail(const Fault& why) {
  if (closed_) return;
  close();
  if (handler_) handler_->onTransportClosed(why);
}

void FfsTransport::setReading(bool on) {
  reading_ = on;
  if (!on || closed_) return;
  deliver();  // reads that completed while we were paused
  loop_.defer(this);
}

void FfsTransport::onPoll(uint32_t) {
  if (!closed_) reap();
}

void FfsTransport::runDeferred() {
  if (!closed_) submit();
}

void FfsTransport::reap() {
  uint64_t count;
  ssize_t r = ::read(eventFd_, &count, sizeof count);  // reset the edge before looking
  (void)r;
  struct io_event events[kRxSlots + kTxSlots];
  constexpr long kMax = kRxSlots + kTxSlots;
  for (;;) {
    struct timespec none = {0, 0};
    long n = ioGetEvents(ctx_, 0, kMax, events, &none);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(Fault(codes::kFfsIo, std::string("io_getevents: ") + strerror(errno)));
      return;
    }
    for (long i = 0; i < n && !closed_; ++i) {
      uint64_t tag = events[i].data;
      uint64_t slot = tag & (kWriteTag - 1);
      if (tag & kWriteTag) {
        if (slot < uint64_t(kTxSlots)) completeWrite(int(slot), events[i].res);
      } else if (slot < uint64_t(kRxSlots)) {
        completeRead(int(slot), events[i].res);
      }
    }
    if (closed_ || n < kMax) break;
  }
  if (closed_) return;
  deliver();
  if (!closed_) submit();
}

void FfsTransport::completeRead(int slot, long long result) {
  RxSlot& s = rx_[slot];
  if (s.state != RxState::Queued) return;  // not ours: ignore rather than trust it
  // The kernel never returns more than asked; if it did, the length is a lie.
  if (result > (long long)kReadSize) result = -EOVERFLOW;
  s.result = result;
  s.state = RxState::Done;
}

void FfsTransport::completeWrite(int slot, long long result) {
  TxSlot& s = tx_[slot];
  if (!s.busy) return;
  size_t len = s.packet.size();
  s.busy = false;
  s.packet = core::OutPacket();
  --txBusy_;
  queuedBytes_ -= len;
  if (result < 0) {
    fail(faultFor(-result, "IN"));
    return;
  }
  if (size_t(result) != len) {
    fail(Fault(codes::kFfsIo, "IN request moved " + std::to_string(result) + " of " +
                                  std::to_string(len) + " bytes"));
    return;
  }
  EngineStats::add(len == 0 ? stats_.zlpsOut : stats_.transfersOut, 1);
  EngineStats::add(stats_.usbBytesOut, len);
  if (aboveHighWater_ && queuedBytes_ <= kLowWater) {
    aboveHighWater_ = false;
    if (handler_) handler_->onTransportDrained();
  }
}

void FfsTransport::deliver() {
  if (delivering_ || closed_) return;
  delivering_ = true;
  bool any = false;
  // In submission order: the controller completes OUT requests in the order
  // they were queued, and so must the session see them.
  while (reading_ && !closed_ && rx_[rxHead_].state == RxState::Done) {
    int i = rxHead_;
    RxSlot& s = rx_[i];
    s.state = RxState::Delivered;
    rxHead_ = (rxHead_ + 1) % kRxSlots;
    any = true;
    if (s.result < 0) {
      fail(faultFor(-s.result, "OUT"));
      break;
    }
    size_t len = size_t(s.result);
    uint8_t* data = rxbuf_.get() + size_t(i) * kReadSize;
    EngineStats::add(len == 0 ? stats_.zlpsIn : stats_.transfersIn, 1);
    EngineStats::add(stats_.usbBytesIn, len);
    if (handler_) handler_->onTransfer(data, len);
    if (!closed_ && len > 0 && len < kReadSize && len % maxPacketSize_ == 0) {
      // Ended short of our buffer on a packet boundary: a ZLP ended it.
      EngineStats::add(stats_.zlpsIn, 1);
      if (handler_) handler_->onTransfer(data + len, 0);
    }
  }
  if (any && !closed_ && handler_) handler_->onTransferBatchEnd();
  if (!closed_) {
    for (auto& s : rx_) {
      if (s.state == RxState::Delivered) s.state = RxState::Idle;
    }
    if (any) loop_.defer(this);  // queue the freed buffers again
  }
  delivering_ = false;
}

void FfsTransport::submit() {
  submitReads();
  if (!closed_) submitWrites();
}

int FfsTransport::submitBatch(struct iocb** cbs, int n) {
  int done = 0;
  while (done < n) {
    long r = ioSubmit(ctx_, n - done, cbs + done);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(Fault(codes::kFfsIo, std::string("io_submit: ") + strerror(errno)));
      return -1;
    }
    if (r == 0) break;
    done += int(r);
  }
  return done;
}

void FfsTransport::submitReads() {
  if (!reading_ || delivering_) return;
  struct iocb* cbs[kRxSlots];
  int n = 0;
  for (int k = 0, i = rxTail_; k < kRxSlots && rx_[i].state == RxState::Idle; ++k, i = (i + 1) % kRxSlots) {
    prepare(rx_[i].cb, outFd_, IOCB_CMD_PREAD, rxbuf_.get() + size_t(i) * kReadSize, kReadSize,
            uint64_t(i), eventFd_);
    cbs[n++] = &rx_[i].cb;
  }
  if (n == 0) return;
  int taken = submitBatch(cbs, n);
  for (int k = 0; k < taken; ++k) {
    rx_[rxTail_].state = RxState::Queued;
    rxTail_ = (rxTail_ + 1) % kRxSlots;
  }
}

void FfsTransport::submitWrites() {
  struct iocb* cbs[kTxSlots];
  int slots[kTxSlots];
  int n = 0;
  // Prepare from the queue's head without moving anything: a packet's bytes
  // do not move when the packet does, so only what the kernel took leaves it.
  auto it = queue_.begin();
  for (int i = 0; i < kTxSlots && it != queue_.end() && txBusy_ + n < kTxSlots; ++i) {
    if (tx_[i].busy) continue;
    void* buf = it->size() ? static_cast<void*>(it->data()) : &zlpByte;
    prepare(tx_[i].cb, inFd_, IOCB_CMD_PWRITE, buf, it->size(), kWriteTag | uint64_t(i), eventFd_);
    slots[n] = i;
    cbs[n++] = &tx_[i].cb;
    ++it;
  }
  if (n == 0) return;
  int taken = submitBatch(cbs, n);
  for (int k = 0; k < taken; ++k) {
    TxSlot& s = tx_[slots[k]];
    s.packet = std::move(queue_.front());
    queue_.pop_front();
    s.busy = true;
    ++txBusy_;
  }
}

void FfsTransport::send(core::OutPacket packet, bool zlp) {
  if (closed_) return;
  size_t len = packet.size();
  if (len > kMaxInTransfer) {
    fail(Fault(codes::kOversizeTransfer, "IN transfer of " + std::to_string(len) + " bytes"));
    return;
  }
  queuedBytes_ += len;
  queue_.push_back(std::move(packet));
  // FunctionFS sends exactly what is written; the ZLP that ends a transfer
  // on a packet boundary is ours to write.
  if (zlp && len > 0 && len % maxPacketSize_ == 0) queue_.emplace_back();
  if (queuedBytes_ >= kHighWater) aboveHighWater_ = true;
  loop_.defer(this);
}

}  // namespace tsmuxd::usb
