#pragma once
// One opened Apple device with its mux interface claimed, and every libusb
// transfer that belongs to it. Transfers point at their slot here, never at
// the transport, so the device can outlive its transport while cancelled
// transfers come back (LibusbContext::retire).
#include <libusb.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/buffers.h"

namespace tsmuxd::usb {

class LibusbContext;

// What the control plane chose (src/usb/config-select.ts) and native code executes.
struct MuxEndpoints {
  uint8_t configuration = 0;
  uint8_t interfaceNumber = 0;
  uint8_t in = 0;   // bEndpointAddress, 0x80 set
  uint8_t out = 0;  // bEndpointAddress, 0x80 clear
  uint16_t maxPacketSize = 512;
};

class LibusbDevice {
 public:
  enum class Kind { In, Out, Control };

  struct Slot {
    LibusbDevice* device = nullptr;
    libusb_transfer* xfer = nullptr;
    Kind kind = Kind::In;
    bool busy = false;        // submitted, callback not yet run
    uint8_t* buffer = nullptr;  // owned by the device; In, Control, and Out in usbfs memory
    size_t capacity = 0;
    // The buffer is usbfs memory (libusb_dev_mem_alloc, an mmap of the
    // device's fd): usbfs then hands it to the controller as it is, instead
    // of allocating kernel buffers for each URB and copying through them.
    bool devMem = false;
    core::OutPacket packet;  // Out without a buffer: libusb reads straight from the pool block
  };

  // Told about each finished transfer, inside libusb's event handling: it may
  // only record the result and defer work, never close the device.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void onSlotDone(Slot& slot) = 0;
  };

  LibusbDevice(LibusbContext& ctx, libusb_device_handle* handle, uint8_t bus, uint8_t address);
  // Requires no transfer in flight (LibusbContext::retire sees to it).
  ~LibusbDevice();
  LibusbDevice(const LibusbDevice&) = delete;
  LibusbDevice& operator=(const LibusbDevice&) = delete;

  libusb_device_handle* handle() const { return handle_; }
  uint8_t bus() const { return bus_; }
  uint8_t address() const { return address_; }
  void setClaimed(int interfaceNumber) { claimed_ = interfaceNumber; }
  void setListener(Listener* l) { listener_ = l; }

  // Where a slot's buffer comes from: the heap; usbfs memory, else the heap;
  // usbfs memory, else none (Out: then it sends from the pool block).
  enum class Memory { Heap, DevMemOrHeap, DevMemOrNone };
  // A slot with its own libusb_transfer and up to `bufferSize` bytes of
  // buffer (slot->capacity says how many, slot->devMem where they are).
  // Null when no transfer can be allocated.
  Slot* newSlot(Kind kind, size_t bufferSize, Memory memory = Memory::Heap);
  // Point a slot's transfer at `data` (Out: the slot's packet; In: its
  // buffer). No timeout: a bulk pipe to a phone may idle for hours.
  void fillBulk(Slot& slot, uint8_t endpoint, uint8_t* data, int length, uint8_t flags);
  // The setup packet is already in slot.buffer (libusb_fill_control_setup).
  void fillControl(Slot& slot, unsigned timeoutMs);
  // libusb_submit_transfer; marks the slot busy on success.
  int submit(Slot& slot);
  void cancelAll();
  int inFlight() const { return inFlight_; }
  // The handle is closed with transfers still in flight: usbfs kills their
  // URBs on close and libusb forgets them, but their memory is never freed
  // (the caller leaks this object rather than wait forever).
  void forceClose();

 private:
  static void LIBUSB_CALL onTransferDone(libusb_transfer* xfer);

  LibusbContext& ctx_;
  libusb_device_handle* handle_;
  uint8_t bus_;
  uint8_t address_;
  int claimed_ = -1;
  Listener* listener_ = nullptr;
  int inFlight_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace tsmuxd::usb
