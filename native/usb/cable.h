#pragma once
// The virtual cable: a SOCK_SEQPACKET Unix socket where one message is one USB
// transfer and an empty message is a ZLP. The device end sends its
// descriptors first (cable_descriptor.h). It lets every ZLP and framing rule
// of real USB run in tests with no USB at all.
#include <sys/socket.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "usb/transport.h"

namespace tsmuxd {
struct EngineStats;
}

namespace tsmuxd::usb {

class CableTransport : public Transport, public core::Pollable, public core::Deferred {
 public:
  // The largest transfer accepted from the other end; bigger ones are hostile.
  // A device's transfer carries one mux packet (at most 65535 bytes).
  static constexpr size_t kMaxTransfer = 64 << 10;
  // Transfers taken per recvmmsg: syscalls, not bytes, are the cost here.
  static constexpr int kRxSlots = 8;

  CableTransport(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats, int fd);
  ~CableTransport() override;

  void setReading(bool on) override;
  void send(core::OutPacket packet, bool zlp) override;
  void close() override;

  void onPoll(uint32_t events) override;
  void runDeferred() override;

  // Opens a cable end: connects to `path`, non-blocking, large send buffer.
  static int connectPath(const std::string& path, std::string& error);
  static int listenPath(const std::string& path, std::string& error);
  static void tuneSocket(int fd);

 private:
  void readSome();
  void flush();
  void fail(const Fault& why);
  // Hands the received batch to the handler; stops early if reading pauses
  // and resumes from there.
  void deliverBatch();
  bool peerHungUp() const;

  core::EventLoop& loop_;
  core::BufferPool& pool_;
  EngineStats& stats_;
  int fd_;
  bool reading_ = false;
  bool readable_ = false;
  bool writable_ = true;
  bool aboveHighWater_ = false;
  bool peerClosed_ = false;  // epoll saw RDHUP/HUP: a zero-length read may be EOF
  std::deque<core::OutPacket> queue_;
  std::unique_ptr<uint8_t[]> rxbuf_;
  size_t rxLen_[kRxSlots] = {};
  int rxFlags_[kRxSlots] = {};
  int rxCount_ = 0;
  int rxNext_ = 0;
};

}  // namespace tsmuxd::usb
