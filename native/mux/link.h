#pragma once
// What a session needs from whatever carries its transfers. mux defines it so
// that mux never sees usb/: the engine's DeviceLink adapts a usb::Transport to
// it, and the fuzz harness plays it directly (test/fuzz/native/).
#include <cstdint>

#include "core/buffers.h"

namespace tsmuxd::mux {

class PacketLink {
 public:
  virtual ~PacketLink() = default;
  // Queues one transfer. When `zlp` is set and the length is a multiple of
  // wMaxPacketSize, a zero-length transfer follows it.
  virtual void send(core::OutPacket packet, bool zlp) = 0;
  // Above the carrier's high-water mark: producers should pause until the
  // session's onTransportDrained().
  virtual bool congested() const = 0;
  virtual uint16_t maxPacketSize() const = 0;
};

}  // namespace tsmuxd::mux
