#pragma once
// What a mux session needs from a USB link, whatever carries it: libusb bulk
// endpoints, FunctionFS, or the virtual cable. Like libusb's own OS backends,
// each transport hides its mechanics behind this one interface.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/buffers.h"
#include "core/fault.h"

namespace tsmuxd::usb {

class TransportHandler {
 public:
  virtual ~TransportHandler() = default;
  // One completed transfer, in order. A zero length is a ZLP. The bytes stay
  // valid until onTransferBatchEnd(), so they can be written on without a copy.
  virtual void onTransfer(const uint8_t* data, size_t len) = 0;
  // The transfers handed over since the last call are about to be reused.
  virtual void onTransferBatchEnd() = 0;
  // The send queue fell below its low-water mark after being above the high one.
  virtual void onTransportDrained() = 0;
  // The link is gone (unplug, I/O error, hostile input). Called once.
  virtual void onTransportClosed(const Fault& why) = 0;
};

class Transport {
 public:
  // Above this many queued bytes producers should pause; below the low mark
  // they are told to go on.
  static constexpr size_t kHighWater = 1 << 20;
  static constexpr size_t kLowWater = 256 << 10;

  virtual ~Transport() = default;
  // The handler is not owned. It must outlive the transport, or call close()
  // (which detaches it) before it goes.
  void setHandler(TransportHandler* handler) { handler_ = handler; }
  virtual void setReading(bool on) = 0;
  // Queues one transfer. When `zlp` is set and the length is a multiple of
  // wMaxPacketSize, a zero-length transfer follows it.
  virtual void send(core::OutPacket packet, bool zlp) = 0;
  // Tears the link down without calling the handler.
  virtual void close() = 0;

  size_t queuedBytes() const { return queuedBytes_; }
  uint16_t maxPacketSize() const { return maxPacketSize_; }
  void setMaxPacketSize(uint16_t size) { maxPacketSize_ = size ? size : 512; }
  bool congested() const { return queuedBytes_ >= kHighWater; }

 protected:
  explicit Transport(uint16_t maxPacketSize = 512) { setMaxPacketSize(maxPacketSize); }

  TransportHandler* handler_ = nullptr;
  uint16_t maxPacketSize_ = 512;
  // Queued plus in flight: what congestion is measured by.
  size_t queuedBytes_ = 0;
};

}  // namespace tsmuxd::usb
