#include "usb/libusb_open.h"

#include <algorithm>
#include <cstdio>

#include "usb/libusb_context.h"

namespace tsmuxd::usb {

namespace {

constexpr uint16_t kAppleVendorId = 0x05ac;

std::string hex4(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04x", v);
  return buf;
}

const char* transferStatusName(libusb_transfer_status s) {
  switch (s) {
    case LIBUSB_TRANSFER_COMPLETED: return "completed";
    case LIBUSB_TRANSFER_ERROR: return "error";
    case LIBUSB_TRANSFER_TIMED_OUT: return "timed out";
    case LIBUSB_TRANSFER_CANCELLED: return "cancelled";
    case LIBUSB_TRANSFER_STALL: return "stalled";
    case LIBUSB_TRANSFER_NO_DEVICE: return "device gone";
    case LIBUSB_TRANSFER_OVERFLOW: return "overflow";
  }
  return "unknown status";
}

}  // namespace

bool isAppleMuxDevice(uint16_t vendorId, uint16_t productId) {
  if (vendorId != kAppleVendorId) return false;
  return (productId >= 0x1290 && productId <= 0x12af) || productId == 0x8600 ||
         (productId >= 0x1901 && productId <= 0x1905);
}

LibusbOpener::LibusbOpener(LibusbContext& ctx, const UsbOpenRequest& request, Done done)
    : ctx_(ctx), request_(request), done_(std::move(done)) {}

LibusbOpener::~LibusbOpener() { cancel(); }

void LibusbOpener::start() { tryOpen(); }

void LibusbOpener::cancel() {
  if (retryTimer_) ctx_.loop().cancelTimer(retryTimer_);
  retryTimer_ = 0;
  finished_ = true;
  if (device_) ctx_.retire(std::move(device_));
}

void LibusbOpener::tryOpen() {
  if (finished_) return;
  std::string where = "USB device at bus " + std::to_string(request_.bus) + " address " +
                      std::to_string(request_.address);
  libusb_device** list = nullptr;
  ssize_t n = libusb_get_device_list(ctx_.raw(), &list);
  if (n < 0) {
    finish(Fault(codes::kUsbOpen, "cannot list USB devices: " + libusbErrorText(int(n))));
    return;
  }
  libusb_device* dev = nullptr;
  for (ssize_t i = 0; i < n; ++i) {
    if (libusb_get_bus_number(list[i]) == request_.bus &&
        libusb_get_device_address(list[i]) == request_.address) {
      dev = libusb_ref_device(list[i]);
      break;
    }
  }
  libusb_free_device_list(list, 1);
  if (!dev) {
    if (++attempts_ < kFindAttempts) {
      retryTimer_ = ctx_.loop().addTimer(kFindRetryMs, [this] {
        retryTimer_ = 0;
        tryOpen();
      });
      return;
    }
    finish(Fault(codes::kUsbOpen, where + " is not there (unplugged?)"));
    return;
  }
  Fault f = openAndClaim(dev);
  if (!f) f = describe(dev);
  libusb_unref_device(dev);
  if (f) {
    f.message = where + ": " + f.message;
    finish(f);
    return;
  }
  if (serialIndex_ == 0) {
    finish(Fault(codes::kUsbOpen, where + " has no serial number"));
    return;
  }
  control_ = device_->newSlot(LibusbDevice::Kind::Control, LIBUSB_CONTROL_SETUP_SIZE + 255);
  if (!control_) {
    finish(Fault(codes::kUsbOpen, "out of memory for a control transfer"));
    return;
  }
  device_->setListener(this);
  readingLanguage_ = true;
  requestString(0, 0);
}

Fault LibusbOpener::openAndClaim(libusb_device* dev) {
  // The descriptor libusb cached at enumeration: no I/O, nothing opened yet.
  libusb_device_descriptor dd;
  int r = libusb_get_device_descriptor(dev, &dd);
  if (r != 0) return Fault(codes::kUsbOpen, "no device descriptor: " + libusbErrorText(r));
  if (!isAppleMuxDevice(dd.idVendor, dd.idProduct) || dd.idVendor != request_.vendorId ||
      dd.idProduct != request_.productId) {
    return Fault(codes::kUsbOpen, "is " + hex4(dd.idVendor) + ":" + hex4(dd.idProduct) +
                                      ", not the Apple device discovery saw; not opened");
  }
  libusb_device_handle* handle = nullptr;
  r = libusb_open(dev, &handle);
  if (r != 0) {
    std::string hint = r == LIBUSB_ERROR_ACCESS ? " (install contrib/udev rule or run as root)" : "";
    return Fault(codes::kUsbOpen, "cannot open: " + libusbErrorText(r) + hint);
  }
  device_ = std::make_unique<LibusbDevice>(ctx_, handle, request_.bus, request_.address);
  const MuxEndpoints& ep = request_.endpoints;

  int current = 0;
  r = libusb_get_configuration(handle, &current);
  if (r != 0) return Fault(codes::kUsbOpen, "cannot read the configuration: " + libusbErrorText(r));
  if (current != ep.configuration) {
    // Drivers bound to the current configuration's interfaces make
    // SET_CONFIGURATION fail with EBUSY; usbmuxd detaches them too.
    libusb_config_descriptor* cfg = nullptr;
    if (current != 0 && libusb_get_active_config_descriptor(dev, &cfg) == 0) {
      for (int i = 0; i < cfg->bNumInterfaces; ++i) {
        if (cfg->interface[i].num_altsetting < 1) continue;
        int number = cfg->interface[i].altsetting[0].bInterfaceNumber;
        if (libusb_kernel_driver_active(handle, number) == 1) libusb_detach_kernel_driver(handle, number);
      }
      libusb_free_config_descriptor(cfg);
    }
    r = libusb_set_configuration(handle, ep.configuration);
    if (r != 0) {
      return Fault(codes::kUsbOpen, "cannot set configuration " + std::to_string(ep.configuration) +
                                        ": " + libusbErrorText(r));
    }
    ctx_.log("info", "USB device at bus " + std::to_string(request_.bus) + " address " +
                         std::to_string(request_.address) + ": configuration " +
                         std::to_string(current) + " -> " + std::to_string(ep.configuration));
  }

  // Check, on our own descriptors, that what we claim is the mux interface
  // with the endpoints we were told: all three of ff/fe/02, two bulk endpoints.
  libusb_config_descriptor* cfg = nullptr;
  r = libusb_get_config_descriptor_by_value(dev, ep.configuration, &cfg);
  if (r != 0) return Fault(codes::kUsbOpen, "no configuration " + std::to_string(ep.configuration));
  bool match = false;
  for (int i = 0; i < cfg->bNumInterfaces && !match; ++i) {
    if (cfg->interface[i].num_altsetting < 1) continue;
    const libusb_interface_descriptor& alt = cfg->interface[i].altsetting[0];
    if (alt.bInterfaceNumber != ep.interfaceNumber) continue;
    if (alt.bInterfaceClass != 0xff || alt.bInterfaceSubClass != 0xfe ||
        alt.bInterfaceProtocol != 0x02 || alt.bNumEndpoints != 2) {
      break;
    }
    bool in = false, out = false;
    for (int e = 0; e < 2; ++e) {
      const libusb_endpoint_descriptor& d = alt.endpoint[e];
      if ((d.bmAttributes & 0x03) != LIBUSB_TRANSFER_TYPE_BULK) continue;
      if (d.bEndpointAddress == ep.in) in = true;
      if (d.bEndpointAddress == ep.out) out = true;
    }
    match = in && out;
  }
  libusb_free_config_descriptor(cfg);
  if (!match) {
    return Fault(codes::kUsbOpen, "interface " + std::to_string(ep.interfaceNumber) +
                                      " is not the usbmux interface with the chosen endpoints");
  }
  if (libusb_kernel_driver_active(handle, ep.interfaceNumber) == 1) {
    libusb_detach_kernel_driver(handle, ep.interfaceNumber);
  }
  r = libusb_claim_interface(handle, ep.interfaceNumber);
  if (r != 0) {
    return Fault(codes::kUsbOpen, "cannot claim interface " + std::to_string(ep.interfaceNumber) +
                                      ": " + libusbErrorText(r));
  }
  device_->setClaimed(ep.interfaceNumber);
  return Fault();
}

Fault LibusbOpener::describe(libusb_device* dev) {
  libusb_device_descriptor dd;
  if (libusb_get_device_descriptor(dev, &dd) != 0) return Fault(codes::kUsbOpen, "no device descriptor");
  auto d = std::make_shared<CableDescriptor>();
  d->vendorId = dd.idVendor;
  d->productId = dd.idProduct;
  d->bcdDevice = dd.bcdDevice;
  int speed = libusb_get_device_speed(dev);
  d->speed = uint8_t(speed >= 1 && speed <= 5 ? speed : 3);
  d->activeConfiguration = request_.endpoints.configuration;
  size_t count = std::min<size_t>(dd.bNumConfigurations, kMaxConfigurations);
  for (size_t c = 0; c < count; ++c) {
    libusb_config_descriptor* cfg = nullptr;
    if (libusb_get_config_descriptor(dev, uint8_t(c), &cfg) != 0) continue;
    ConfigurationDescriptor config;
    config.value = cfg->bConfigurationValue;
    size_t ifaces = std::min<size_t>(cfg->bNumInterfaces, kMaxInterfaces);
    for (size_t i = 0; i < ifaces; ++i) {
      if (cfg->interface[i].num_altsetting < 1) continue;
      const libusb_interface_descriptor& alt = cfg->interface[i].altsetting[0];
      InterfaceDescriptor iface;
      iface.number = alt.bInterfaceNumber;
      iface.interfaceClass = alt.bInterfaceClass;
      iface.subclass = alt.bInterfaceSubClass;
      iface.protocol = alt.bInterfaceProtocol;
      size_t eps = std::min<size_t>(alt.bNumEndpoints, kMaxEndpoints);
      for (size_t e = 0; e < eps; ++e) {
        EndpointDescriptor ed;
        ed.address = alt.endpoint[e].bEndpointAddress;
        ed.attributes = alt.endpoint[e].bmAttributes;
        ed.maxPacketSize = alt.endpoint[e].wMaxPacketSize;
        iface.endpoints.push_back(ed);
      }
      config.interfaces.push_back(std::move(iface));
    }
    libusb_free_config_descriptor(cfg);
    d->configurations.push_back(std::move(config));
  }
  serialIndex_ = dd.iSerialNumber;
  descriptor_ = std::move(d);
  return Fault();
}

void LibusbOpener::requestString(uint8_t index, uint16_t langId) {
  libusb_fill_control_setup(control_->buffer,
                            LIBUSB_ENDPOINT_IN | LIBUSB_REQUEST_TYPE_STANDARD | LIBUSB_RECIPIENT_DEVICE,
                            LIBUSB_REQUEST_GET_DESCRIPTOR, uint16_t((LIBUSB_DT_STRING << 8) | index),
                            langId, 255);
  device_->fillControl(*control_, kControlTimeoutMs);
  int r = device_->submit(*control_);
  if (r != 0) finish(Fault(codes::kUsbOpen, "cannot read the serial number: " + libusbErrorText(r)));
}

void LibusbOpener::onSlotDone(LibusbDevice::Slot& slot) {
  if (finished_ || &slot != control_) return;
  libusb_transfer* x = slot.xfer;
  std::string what = readingLanguage_ ? "string languages" : "serial number";
  if (x->status != LIBUSB_TRANSFER_COMPLETED) {
    const char* code = x->status == LIBUSB_TRANSFER_NO_DEVICE ? codes::kUnplugged : codes::kUsbOpen;
    finish(Fault(code, "reading the " + what + " failed: " +
                           transferStatusName(libusb_transfer_status(x->status))));
    return;
  }
  // A string descriptor: bLength, bDescriptorType 3, UTF-16LE. Trust neither
  // the device's bLength nor libusb's length beyond what was received.
  const uint8_t* d = libusb_control_transfer_get_data(x);
  int len = std::min(x->actual_length, 255);
  if (len < 2 || d[1] != LIBUSB_DT_STRING || d[0] < 2 || d[0] > len) {
    finish(Fault(codes::kUsbOpen, "malformed " + what + " descriptor"));
    return;
  }
  size_t n = d[0];
  if (readingLanguage_) {
    if (n < 4) {
      finish(Fault(codes::kUsbOpen, "the device lists no string language"));
      return;
    }
    readingLanguage_ = false;
    langId_ = uint16_t(d[2] | (d[3] << 8));
    requestString(serialIndex_, langId_);
    return;
  }
  // As usbmuxd: UTF-16 to ASCII, anything else becomes '?'.
  std::string serial;
  for (size_t i = 2; i + 1 < n; i += 2) {
    uint16_t c = uint16_t(d[i] | (d[i + 1] << 8));
    serial += c >= 0x20 && c < 0x7f ? char(c) : '?';
  }
  if (serial.empty()) {
    finish(Fault(codes::kUsbOpen, "empty serial number"));
    return;
  }
  descriptor_->serial = std::move(serial);
  finish(Fault());
}

void LibusbOpener::finish(const Fault& fault) {
  if (finished_) return;
  finished_ = true;
  if (retryTimer_) ctx_.loop().cancelTimer(retryTimer_);
  retryTimer_ = 0;
  Done done = std::move(done_);
  if (fault) {
    if (device_) ctx_.retire(std::move(device_));
    if (done) done(nullptr, nullptr, fault);
    return;
  }
  device_->setListener(nullptr);
  if (done) done(std::move(device_), std::move(descriptor_), fault);
}

}  // namespace tsmuxd::usb
