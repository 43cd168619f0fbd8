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

#include "pipe/event_loop.h"
#include "usb/transport.h"

namespace tsmuxd {
struct EngineStats;
}

namespace tsmuxd::usb {

class CableTransport : public Transport, public pipe::Pollable, public pipe::Deferred {
 public:
  // The largest transfer accepted from the other end; bigger ones are hostile.
  // A device's transfer carries one mux packet (at most 65535 bytes).
  static constexpr size_t kMaxTransfer = 64 << 10;
  // Transfers taken per recvmmsg: syscalls, not bytes, are the cost here.
  static constexpr int kRxSlots = 8;

  CableTransport(pipe::EventLoop& loop, pipe::BufferPool& pool, EngineStats& stats, int fd);
  ~CableTransport() override;

  void setHandler(TransportHandler* handler) override { handler_ = handler; }
  void setReading(bool on) override;
  void send(pipe::OutPacket packet, bool zlp) override;
  size_t queuedBytes() const override { return queuedBytes_; }
  uint16_t maxPacketSize() const override { return maxPacketSize_; }
  void setMaxPacketSize(uint16_t size) override { maxPacketSize_ = size ? size : 512; }
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

  pipe::EventLoop& loop_;
  pipe::BufferPool& pool_;
  EngineStats& stats_;
  int fd_;
  TransportHandler* handler_ = nullptr;
  uint16_t maxPacketSize_ = 512;
  bool reading_ = false;
  bool readable_ = false;
  bool writable_ = true;
  bool aboveHighWater_ = false;
  bool peerClosed_ = false;  // epoll saw RDHUP/HUP: a zero-length read may be EOF
  std::deque<pipe::OutPacket> queue_;
  size_t queuedBytes_ = 0;
  std::unique_ptr<uint8_t[]> rxbuf_;
  size_t rxLen_[kRxSlots] = {};
  int rxFlags_[kRxSlots] = {};
  int rxCount_ = 0;
  int rxNext_ = 0;
};

// Accepts device ends of cables on a listening path.
class CableListener : public pipe::Pollable {
 public:
  using OnAccept = std::function<void(int fd)>;
  CableListener(pipe::EventLoop& loop, int fd, OnAccept onAccept);
  ~CableListener() override;
  void onPoll(uint32_t events) override;
  void close();

 private:
  pipe::EventLoop& loop_;
  int fd_;
  OnAccept onAccept_;
  pipe::EventLoop::TimerId retryTimer_ = 0;
};

}  // namespace tsmuxd::usb
