#pragma once
// The phone's end of a real USB link: the mux interface's bulk endpoints of
// a FunctionFS function (ffs_function.h), driven with Linux AIO.
//
// Why AIO, and not plain reads: a FunctionFS endpoint file has no poll(),
// and O_NONBLOCK does not make a read or write return early once the
// endpoint is enabled; a synchronous read sleeps until the host sends. AIO is
// the one non-blocking interface FunctionFS offers (the kernel's own
// ffs-aio-example): io_submit queues USB requests and returns, and each
// completion bumps an eventfd that sits in the event loop's epoll set like
// any socket. So the session runs on the event thread exactly as over the
// cable, with no I/O thread, no locks and no extra copy, and several OUT
// requests stay queued, so the host's OUT transfers never wait for us to
// come back and read (the OUT/ZLP deadlock of a single synchronous reader).
//
// Framing: every OUT request is 64 KiB, a phone's largest message plus one.
// The device controller completes a request at a short packet or a ZLP, so a
// read that ends short is one whole host transfer. When such a read's length
// is a multiple of wMaxPacketSize, the host's ZLP ended it and the kernel
// swallowed that ZLP; we hand the session an explicit zero-length transfer
// after it, which keeps MessageAssembler's rule (a message ends at a short
// transfer or a ZLP) true to the wire. A full 64 KiB read has seen no end;
// what follows it continues the message.
//
// FunctionFS never adds an IN ZLP by itself, so send() queues an explicit
// zero-length write after a transfer whose length is a multiple of
// wMaxPacketSize.
#include <linux/aio_abi.h>

#include <deque>
#include <memory>
#include <string>

#include "core/event_loop.h"
#include "usb/transport.h"

namespace tsmuxd {
struct EngineStats;
}

namespace tsmuxd::usb {

class FfsTransport : public Transport, public core::Pollable, public core::Deferred {
 public:
  static constexpr size_t kReadSize = 64 << 10;
  static constexpr int kRxSlots = 4;   // OUT requests kept queued
  static constexpr int kTxSlots = 16;  // IN requests in flight (ZLPs included)
  // The largest IN transfer we queue: the host reassembles at most 65535.
  static constexpr size_t kMaxInTransfer = 65535;

  // Does not own the endpoint fds (the function does, across sessions).
  static std::unique_ptr<FfsTransport> create(core::EventLoop& loop, core::BufferPool& pool,
                                              EngineStats& stats, int outFd, int inFd,
                                              uint16_t maxPacketSize, std::string& error);
  ~FfsTransport() override;

  void setReading(bool on) override;
  void send(core::OutPacket packet, bool zlp) override;
  void close() override;

  void onPoll(uint32_t events) override;
  void runDeferred() override;

 private:
  enum class RxState { Idle, Queued, Done, Delivered };
  struct RxSlot {
    struct iocb cb;
    RxState state = RxState::Idle;
    long long result = 0;
  };
  struct TxSlot {
    struct iocb cb;
    core::OutPacket packet;
    bool busy = false;
  };

  FfsTransport(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats, int outFd,
               int inFd, uint16_t maxPacketSize);
  void reap();
  void completeRead(int slot, long long result);
  void completeWrite(int slot, long long result);
  void deliver();
  void submit();
  void submitReads();
  void submitWrites();
  // io_submit: how many of `n` the kernel took, or -1 after failing the link.
  int submitBatch(struct iocb** cbs, int n);
  void fail(const Fault& why);
  static Fault faultFor(long long err, const char* what);

  core::EventLoop& loop_;
  core::BufferPool& pool_;
  EngineStats& stats_;
  int outFd_;
  int inFd_;
  int eventFd_ = -1;
  aio_context_t ctx_ = 0;
  bool reading_ = false;
  bool delivering_ = false;
  bool aboveHighWater_ = false;

  std::unique_ptr<uint8_t[]> rxbuf_;
  RxSlot rx_[kRxSlots];
  int rxHead_ = 0;  // next slot to hand over, in submission order
  int rxTail_ = 0;  // next slot to submit

  TxSlot tx_[kTxSlots];
  int txBusy_ = 0;
  std::deque<core::OutPacket> queue_;
};

}  // namespace tsmuxd::usb
