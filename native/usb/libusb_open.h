#pragma once
// Opening a phone that discovery (src/usb/discovery.ts) found: by bus number
// and device address, checked against libusb's cached device descriptor
// before anything is opened, so no other device is ever touched. Then the
// configuration the control plane chose, kernel drivers detached, the mux
// interface claimed, and the serial number read with two asynchronous control
// transfers (language, then string), which the event thread never waits for.
#include <functional>
#include <memory>
#include <string>

#include "core/fault.h"
#include "usb/cable_descriptor.h"
#include "usb/libusb_device.h"

namespace tsmuxd::usb {

class LibusbContext;

struct UsbOpenRequest {
  uint8_t bus = 0;
  uint8_t address = 0;
  uint16_t vendorId = 0;
  uint16_t productId = 0;
  MuxEndpoints endpoints;
};

// The USB IDs tsmuxd ever opens (src/usb/config-select.ts has the same rule).
bool isAppleMuxDevice(uint16_t vendorId, uint16_t productId);

class LibusbOpener : public LibusbDevice::Listener {
 public:
  // Called once, from the event thread (possibly inside a libusb callback,
  // so it must not free the opener: the engine retires it to the loop's
  // graveyard). On success `device` is claimed and `descriptor` describes it.
  using Done = std::function<void(std::unique_ptr<LibusbDevice> device,
                                  std::shared_ptr<CableDescriptor> descriptor, const Fault& fault)>;

  LibusbOpener(LibusbContext& ctx, const UsbOpenRequest& request, Done done);
  ~LibusbOpener() override;

  void start();
  // Stops without calling `done`; a claimed device goes to the context's drain.
  void cancel();

  void onSlotDone(LibusbDevice::Slot& slot) override;

 private:
  // How long a freshly plugged device may take to show up in our libusb's
  // device list (its netlink monitor and udev-based discovery race).
  static constexpr int kFindAttempts = 10;
  static constexpr uint64_t kFindRetryMs = 100;
  static constexpr unsigned kControlTimeoutMs = 1000;

  void tryOpen();
  // The synchronous part: returns a fault, or sets device_.
  Fault openAndClaim(libusb_device* dev);
  Fault describe(libusb_device* dev);
  void requestString(uint8_t index, uint16_t langId);
  void finish(const Fault& fault);

  LibusbContext& ctx_;
  UsbOpenRequest request_;
  Done done_;
  int attempts_ = 0;
  uint64_t retryTimer_ = 0;
  std::unique_ptr<LibusbDevice> device_;
  std::shared_ptr<CableDescriptor> descriptor_;
  LibusbDevice::Slot* control_ = nullptr;
  uint8_t serialIndex_ = 0;
  uint16_t langId_ = 0;
  bool readingLanguage_ = false;
  bool finished_ = false;
};

}  // namespace tsmuxd::usb
