#pragma once
// A phone's bulk pipe pair through the project's own libusb handle.
//
// IN: kInTransfers transfers of kInTransferSize bytes stay submitted, and
// their bytes reach the session in submission order as one stream (the host
// side parses IN with the StreamReassembler, so split and merged transfers
// parse alike). 8 x 64 KiB: a completion only returns after the event thread
// has had its turn, so the controller needs queued transfers to keep the
// pipe busy meanwhile; 512 KiB covers ~10 ms of a USB 2.0 phone (~40 MB/s)
// and ~1.3 ms at SuperSpeed rates, 64 KiB holds any whole mux packet
// (<= 65535) and is a multiple of 512 and 1024, and the QEMU gadget lab
// measured 64 KiB x 4+ at the top of its throughput table. usbmuxd's 3 x 16
// KiB was sized for its transfer-boundary reassembly, which we do not use.
//
// OUT: one transfer per mux packet (at most 49152 bytes, usbmuxd's and the
// phone's limit), up to kOutTransfers in flight, with
// LIBUSB_TRANSFER_ADD_ZERO_PACKET when the length is a multiple of
// wMaxPacketSize, so the kernel ends the message with a ZLP.
//
// Transfer buffers are usbfs memory (libusb_dev_mem_alloc) where the kernel
// gives it: usbfs then hands them to the controller as they are. With heap
// buffers it allocates zeroed kernel pages for every URB (the whole 64 KiB
// of an IN transfer however little arrives) and copies through them; in the
// lab that was 14% of the daemon's CPU samples each way (lab/usb-profile).
// An OUT packet is copied into its slot's buffer (one memcpy instead of
// usbfs's allocation and copy_from_user); where usbfs memory is refused
// (old kernels, usbfs_memory_mb used up) IN falls back to the heap and OUT
// sends straight from the pool block, as before.
//
// Completions only record and defer (LibusbDevice::Listener); delivery,
// resubmission and failure happen at the end of the loop turn, outside
// libusb. On close the device goes to LibusbContext::retire, which cancels
// and frees without waiting on the event thread.
#include <deque>
#include <memory>
#include <vector>

#include "core/event_loop.h"
#include "usb/libusb_device.h"
#include "usb/transport.h"

namespace tsmuxd {
struct EngineStats;
}

namespace tsmuxd::usb {

class LibusbContext;

class LibusbTransport : public Transport, public core::Deferred, public LibusbDevice::Listener {
 public:
  static constexpr int kInTransfers = 8;
  static constexpr size_t kInTransferSize = 64 << 10;
  static constexpr int kOutTransfers = 16;
  static constexpr size_t kMaxOutTransfer = 49152;

  LibusbTransport(LibusbContext& ctx, EngineStats& stats, std::unique_ptr<LibusbDevice> device,
                  const MuxEndpoints& endpoints);
  ~LibusbTransport() override;

  void setReading(bool on) override;
  void send(core::OutPacket packet, bool zlp) override;
  void close() override;

  void runDeferred() override;
  void onSlotDone(LibusbDevice::Slot& slot) override;

 private:
  struct Queued {
    core::OutPacket packet;
    bool zlp;
  };

  void deliverIn();
  void submitIn();
  void pumpOut();
  void fail(const Fault& why);
  void failLater(const Fault& why);

  LibusbContext& ctx_;
  EngineStats& stats_;
  std::unique_ptr<LibusbDevice> device_;
  MuxEndpoints endpoints_;
  bool reading_ = false;
  bool closed_ = false;
  bool aboveHighWater_ = false;
  Fault pending_;  // a failed transfer, acted on at the end of the turn

  std::deque<LibusbDevice::Slot*> inFlightIn_;  // submission order
  std::vector<LibusbDevice::Slot*> idleIn_;
  std::vector<LibusbDevice::Slot*> idleOut_;
  std::vector<LibusbDevice::Slot*> delivered_;
  std::deque<Queued> queue_;
};

}  // namespace tsmuxd::usb
