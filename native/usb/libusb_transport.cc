#include "usb/libusb_transport.h"

#include <algorithm>
#include <cstring>

#include "core/stats.h"
#include "usb/libusb_context.h"

namespace tsmuxd::usb {

namespace {

Fault transferFault(int status, const char* direction) {
  std::string what = std::string("bulk ") + direction + " transfer ";
  switch (status) {
    case LIBUSB_TRANSFER_NO_DEVICE: return Fault(codes::kUnplugged, "device unplugged");
    case LIBUSB_TRANSFER_STALL: return Fault(codes::kUsbIo, what + "stalled");
    case LIBUSB_TRANSFER_OVERFLOW: return Fault(codes::kUsbIo, what + "overflowed (the device sent more than asked for)");
    case LIBUSB_TRANSFER_TIMED_OUT: return Fault(codes::kUsbIo, what + "timed out");
    case LIBUSB_TRANSFER_CANCELLED: return Fault(codes::kUsbIo, what + "cancelled");
    // An unplug usually ends here too (EPROTO/ESHUTDOWN from the controller).
    default: return Fault(codes::kUsbIo, what + "failed (unplugged, or the device stopped answering)");
  }
}

Fault submitFault(int r, const char* direction) {
  if (r == LIBUSB_ERROR_NO_DEVICE) return Fault(codes::kUnplugged, "device unplugged");
  return Fault(codes::kUsbIo, std::string("cannot submit a bulk ") + direction + " transfer: " +
                                  libusbErrorText(r));
}

}  // namespace

LibusbTransport::LibusbTransport(LibusbContext& ctx, EngineStats& stats,
                                 std::unique_ptr<LibusbDevice> device, const MuxEndpoints& endpoints)
    : Transport(endpoints.maxPacketSize),
      ctx_(ctx),
      stats_(stats),
      device_(std::move(device)),
      endpoints_(endpoints) {
  using Memory = LibusbDevice::Memory;
  for (int i = 0; i < kInTransfers; ++i) {
    LibusbDevice::Slot* s =
        device_->newSlot(LibusbDevice::Kind::In, kInTransferSize, Memory::DevMemOrHeap);
    if (s) idleIn_.push_back(s);
  }
  for (int i = 0; i < kOutTransfers; ++i) {
    // kMaxOutTransfer: the largest packet send() lets through, so any fits.
    LibusbDevice::Slot* s =
        device_->newSlot(LibusbDevice::Kind::Out, kMaxOutTransfer, Memory::DevMemOrNone);
    if (s) idleOut_.push_back(s);
  }
  if (idleIn_.empty() || idleOut_.empty()) {
    failLater(Fault(codes::kUsbIo, "cannot allocate libusb transfers"));
  }
  device_->setListener(this);
}

LibusbTransport::~LibusbTransport() { close(); }

void LibusbTransport::close() {
  if (closed_) return;
  closed_ = true;
  ctx_.loop().cancelDeferred(this);
  // The slots belong to the device; it takes them to the drain.
  inFlightIn_.clear();
  idleIn_.clear();
  idleOut_.clear();
  delivered_.clear();
  queue_.clear();
  queuedBytes_ = 0;
  if (device_) ctx_.retire(std::move(device_));
}

void LibusbTransport::fail(const Fault& why) {
  if (closed_) return;
  close();
  if (handler_) handler_->onTransportClosed(why);
}

void LibusbTransport::failLater(const Fault& why) {
  if (!pending_) pending_ = why;
  ctx_.loop().defer(this);
}

void LibusbTransport::setReading(bool on) {
  reading_ = on;
  if (on && !closed_) ctx_.loop().defer(this);
}

void LibusbTransport::send(core::OutPacket packet, bool zlp) {
  if (closed_) return;
  size_t len = packet.size();
  if (len > kMaxOutTransfer) {
    // The session never builds one; refuse rather than let the phone see a
    // transfer it cannot take.
    failLater(Fault(codes::kMessageTooLarge, "refusing a " + std::to_string(len) +
                                                 "-byte OUT transfer (limit " +
                                                 std::to_string(kMaxOutTransfer) + ")"));
    return;
  }
  queuedBytes_ += len;
  queue_.push_back({std::move(packet), zlp});
  if (queuedBytes_ >= kHighWater) aboveHighWater_ = true;
  ctx_.loop().defer(this);
}

void LibusbTransport::onSlotDone(LibusbDevice::Slot& slot) {
  // Inside libusb's event handling: record, defer, nothing else.
  libusb_transfer* x = slot.xfer;
  if (slot.kind == LibusbDevice::Kind::Out) {
    queuedBytes_ -= std::min<size_t>(queuedBytes_, size_t(x->length));
    idleOut_.push_back(&slot);
    if (x->status != LIBUSB_TRANSFER_COMPLETED) {
      failLater(transferFault(x->status, "OUT"));
    } else if (x->actual_length != x->length) {
      failLater(Fault(codes::kUsbIo, "short bulk OUT transfer: " + std::to_string(x->actual_length) +
                                         " of " + std::to_string(x->length) + " bytes"));
    }
  } else if (x->status != LIBUSB_TRANSFER_COMPLETED) {
    // Noticed even while reading is paused, so an unplug is never missed.
    failLater(transferFault(x->status, "IN"));
  }
  ctx_.loop().defer(this);
}

void LibusbTransport::runDeferred() {
  if (closed_) return;
  deliverIn();
  if (closed_) return;
  if (pending_) {
    Fault f = pending_;
    fail(f);
    return;
  }
  submitIn();
  if (closed_) return;
  pumpOut();
  if (closed_) return;
  if (aboveHighWater_ && queuedBytes_ <= kLowWater) {
    aboveHighWater_ = false;
    if (handler_) handler_->onTransportDrained();
  }
}

void LibusbTransport::deliverIn() {
  while (reading_ && !closed_ && !inFlightIn_.empty() && !inFlightIn_.front()->busy) {
    LibusbDevice::Slot* s = inFlightIn_.front();
    libusb_transfer* x = s->xfer;
    if (x->status != LIBUSB_TRANSFER_COMPLETED) break;  // pending_ has it
    if (x->actual_length < 0 || size_t(x->actual_length) > s->capacity) {
      failLater(Fault(codes::kUsbIo, "bulk IN transfer reports an impossible length"));
      break;
    }
    inFlightIn_.pop_front();
    size_t len = size_t(x->actual_length);
    EngineStats::add(len == 0 ? stats_.zlpsIn : stats_.transfersIn, 1);
    EngineStats::add(stats_.usbBytesIn, len);
    delivered_.push_back(s);
    // The bytes stay put until onTransferBatchEnd(): the slot is not
    // resubmitted before then.
    if (handler_) handler_->onTransfer(s->buffer, len);
  }
  if (closed_ || delivered_.empty()) return;
  if (handler_) handler_->onTransferBatchEnd();
  if (closed_) return;
  idleIn_.insert(idleIn_.end(), delivered_.begin(), delivered_.end());
  delivered_.clear();
}

void LibusbTransport::submitIn() {
  while (reading_ && !idleIn_.empty()) {
    LibusbDevice::Slot* s = idleIn_.back();
    idleIn_.pop_back();
    device_->fillBulk(*s, endpoints_.in, s->buffer, int(kInTransferSize), 0);
    int r = device_->submit(*s);
    if (r != 0) {
      idleIn_.push_back(s);
      fail(submitFault(r, "IN"));
      return;
    }
    inFlightIn_.push_back(s);
  }
}

void LibusbTransport::pumpOut() {
  while (!queue_.empty() && !idleOut_.empty()) {
    LibusbDevice::Slot* s = idleOut_.back();
    idleOut_.pop_back();
    Queued q = std::move(queue_.front());
    queue_.pop_front();
    size_t len = q.packet.size();
    bool zlp = q.zlp && len > 0 && len % maxPacketSize_ == 0;
    uint8_t* data;
    if (s->devMem) {
      // send() refused anything over kMaxOutTransfer, the slot's capacity;
      // checked again here because a memcpy past it would hit the next mapping.
      if (len > s->capacity) {
        idleOut_.push_back(s);
        fail(Fault(codes::kMessageTooLarge, "an OUT packet of " + std::to_string(len) +
                                                " bytes does not fit its transfer buffer"));
        return;
      }
      // One copy here saves usbfs its kmalloc and copy_from_user per URB,
      // and the pool block goes back now rather than at completion.
      if (len) std::memcpy(s->buffer, q.packet.data(), len);
      data = s->buffer;
    } else {
      s->packet = std::move(q.packet);
      data = s->packet.data();
    }
    device_->fillBulk(*s, endpoints_.out, data, int(len),
                      zlp ? uint8_t(LIBUSB_TRANSFER_ADD_ZERO_PACKET) : uint8_t(0));
    int r = device_->submit(*s);
    if (r != 0) {
      s->packet = core::OutPacket();
      idleOut_.push_back(s);
      fail(submitFault(r, "OUT"));
      return;
    }
    EngineStats::add(len == 0 ? stats_.zlpsOut : stats_.transfersOut, 1);
    if (zlp) EngineStats::add(stats_.zlpsOut, 1);
    EngineStats::add(stats_.usbBytesOut, len);
  }
}

}  // namespace tsmuxd::usb
