#include "usb/libusb_device.h"

#include "usb/libusb_context.h"

namespace tsmuxd::usb {

LibusbDevice::LibusbDevice(LibusbContext& ctx, libusb_device_handle* handle, uint8_t bus,
                           uint8_t address)
    : ctx_(ctx), handle_(handle), bus_(bus), address_(address) {}

LibusbDevice::~LibusbDevice() {
  for (auto& s : slots_) {
    if (s->xfer) libusb_free_transfer(s->xfer);
    if (!s->buffer) continue;
    // usbfs memory is unmapped while the handle is still open (libusb wants
    // it); after forceClose() there is no handle and the device is leaked
    // whole, mappings included, so this never runs without one.
    if (!s->devMem) delete[] s->buffer;
    else if (handle_) libusb_dev_mem_free(handle_, s->buffer, s->capacity);
  }
  if (handle_) {
    // A release on an unplugged device fails at once (ENODEV); nothing waits.
    if (claimed_ >= 0) libusb_release_interface(handle_, claimed_);
    libusb_close(handle_);
    handle_ = nullptr;
  }
}

LibusbDevice::Slot* LibusbDevice::newSlot(Kind kind, size_t bufferSize, Memory memory) {
  auto slot = std::make_unique<Slot>();
  slot->device = this;
  slot->kind = kind;
  slot->xfer = libusb_alloc_transfer(0);
  if (!slot->xfer) return nullptr;
  if (bufferSize) {
    // NULL where usbfs has no mmap (kernels before 4.6, other platforms),
    // the controller's DMA pool is short, or usbfs_memory_mb is used up.
    if (memory != Memory::Heap && handle_) slot->buffer = libusb_dev_mem_alloc(handle_, bufferSize);
    slot->devMem = slot->buffer != nullptr;
    if (!slot->buffer && memory != Memory::DevMemOrNone) slot->buffer = new uint8_t[bufferSize];
    slot->capacity = slot->buffer ? bufferSize : 0;
  }
  slot->xfer->user_data = slot.get();
  slots_.push_back(std::move(slot));
  return slots_.back().get();
}

void LibusbDevice::fillBulk(Slot& slot, uint8_t endpoint, uint8_t* data, int length,
                            uint8_t flags) {
  libusb_fill_bulk_transfer(slot.xfer, handle_, endpoint, data, length, onTransferDone, &slot, 0);
  slot.xfer->flags = flags;
}

void LibusbDevice::fillControl(Slot& slot, unsigned timeoutMs) {
  libusb_fill_control_transfer(slot.xfer, handle_, slot.buffer, onTransferDone, &slot,
                               timeoutMs);
  slot.xfer->flags = 0;
}

int LibusbDevice::submit(Slot& slot) {
  if (!handle_) return LIBUSB_ERROR_NO_DEVICE;
  slot.xfer->user_data = &slot;
  int r = libusb_submit_transfer(slot.xfer);
  if (r == 0) {
    slot.busy = true;
    ++inFlight_;
  }
  return r;
}

void LibusbDevice::cancelAll() {
  for (auto& s : slots_) {
    // NOT_FOUND means it already finished and its callback is on the way.
    if (s->busy) libusb_cancel_transfer(s->xfer);
  }
}

void LibusbDevice::forceClose() {
  listener_ = nullptr;
  if (!handle_) return;
  if (claimed_ >= 0) libusb_release_interface(handle_, claimed_);
  libusb_close(handle_);
  handle_ = nullptr;
}

void LIBUSB_CALL LibusbDevice::onTransferDone(libusb_transfer* xfer) {
  auto* slot = static_cast<Slot*>(xfer->user_data);
  LibusbDevice* self = slot->device;
  slot->busy = false;
  --self->inFlight_;
  if (slot->kind == Kind::Out) {
    // The bytes have left (or never will): the pool block can go back.
    // The listener reads xfer->length and status, not the packet.
    slot->packet = core::OutPacket();
  }
  if (self->listener_) self->listener_->onSlotDone(*slot);
}

}  // namespace tsmuxd::usb
