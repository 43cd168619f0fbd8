// The engine's libusb side: one context per engine, started on request, and
// the opening of each phone that discovery (in JS) found. Opening runs on the
// event thread through usb::LibusbOpener; the result becomes a host-role
// DeviceLink, announced as `attached` like a cable's.
#include "engine/engine.h"
#include "usb/libusb_transport.h"

namespace tsmuxd::engine {

bool Engine::startUsb(std::string& error) {
  if (usb_) return true;
  auto log = [this](const char* level, const std::string& text) {
    NativeEvent ev(NativeEvent::Type::Log);
    ev.level = level;
    ev.text = text;
    emit(std::move(ev));
  };
  usb_ = usb::LibusbContext::create(loop_, log, error);
  if (!usb_) return false;
  loop_.post([this] { usb_->attach(); });
  return true;
}

uint32_t Engine::openUsb(const usb::UsbOpenRequest& request) {
  uint32_t handle = nextHandle_++;
  loop_.post([this, handle, request] {
    if (!usb_) {
      NativeEvent ev(NativeEvent::Type::Detached);
      ev.handle = handle;
      ev.code = codes::kUsbUnavailable;
      ev.text = "libusb is not started";
      emit(std::move(ev));
      return;
    }
    auto opener = loop_.makeRetiring<usb::LibusbOpener>(
        *usb_, request,
        [this, handle, request](std::unique_ptr<usb::LibusbDevice> device,
                                std::shared_ptr<usb::CableDescriptor> descriptor, const Fault& f) {
          usbOpened(handle, request, std::move(device), std::move(descriptor), f);
        });
    opening_[handle] = opener;
    opener->start();
  });
  return handle;
}

void Engine::usbOpened(uint32_t handle, const usb::UsbOpenRequest& request,
                       std::unique_ptr<usb::LibusbDevice> device,
                       std::shared_ptr<usb::CableDescriptor> descriptor, const Fault& fault) {
  auto it = opening_.find(handle);
  if (it == opening_.end()) {
    // Cancelled meanwhile: never close a handle here (this may run inside a
    // libusb callback); the context's drain does it.
    if (device) usb_->retire(std::move(device));
    return;
  }
  // Possibly inside the opener's own libusb callback: makeRetiring keeps it
  // alive to the end of the turn.
  opening_.erase(it);
  if (fault) {
    NativeEvent ev(NativeEvent::Type::Detached);
    ev.handle = handle;
    ev.code = fault.code;
    ev.text = fault.message;
    emit(std::move(ev));
    return;
  }
  auto transport =
      std::make_unique<usb::LibusbTransport>(*usb_, stats_, std::move(device), request.endpoints);
  auto link = loop_.makeRetiring<DeviceLink>(*this, handle, mux::Role::Host, std::move(transport));
  link->markDescribed();
  links_[handle] = link;
  NativeEvent ev(NativeEvent::Type::Attached);
  ev.handle = handle;
  ev.descriptor = std::move(descriptor);
  ev.link = "usb";
  ev.locationId = (uint32_t(request.bus) << 16) | request.address;
  emit(std::move(ev));
}

}  // namespace tsmuxd::engine
