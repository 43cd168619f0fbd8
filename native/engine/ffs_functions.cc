// The engine's FunctionFS side: the simulated phone on a real USB gadget.
// One FfsFunction per function (ep0 and its lifecycle events); the mux
// function runs one DeviceLink session per ENABLE under a fixed handle, the
// placeholders (the interfaces a phone shows around the mux) only log.
#include "engine/engine.h"
#include "usb/ffs.h"

namespace tsmuxd::engine {

uint32_t Engine::attachDeviceRoleFfs(const std::string& dir, const DeviceRoleOptions& options,
                                     std::string& error) {
  std::shared_ptr<usb::FfsFunction> function =
      usb::FfsFunction::open(dir, usb::FfsInterfaceSpec(), true, error);
  if (!function) return 0;
  uint32_t handle = nextHandle_++;
  startFfs(function, handle, options, true);
  return handle;
}

uint32_t Engine::attachFfsPlaceholder(const std::string& dir, const usb::FfsInterfaceSpec& spec,
                                      std::string& error) {
  std::shared_ptr<usb::FfsFunction> function = usb::FfsFunction::open(dir, spec, false, error);
  if (!function) return 0;
  uint32_t handle = nextHandle_++;
  startFfs(function, handle, DeviceRoleOptions(), false);
  return handle;
}

void Engine::startFfs(std::shared_ptr<usb::FfsFunction> function, uint32_t handle,
                      const DeviceRoleOptions& options, bool sessions) {
  loop_.post([this, function, handle, options, sessions] {
    std::string why;
    bool ok = function->start(loop_, [this, handle](usb::FfsFunction::Event e, const std::string& detail) {
      onFfsEvent(handle, e, detail);
    }, why);
    if (ok) {
      ffs_[handle] = FfsEntry{function, options, sessions};
    } else {
      emitLog(handle, "error", "FunctionFS: cannot watch ep0: " + why);
    }
  });
}

void Engine::onFfsEvent(uint32_t handle, usb::FfsFunction::Event e, const std::string& detail) {
  using E = usb::FfsFunction::Event;
  auto it = ffs_.find(handle);
  if (it == ffs_.end()) return;
  FfsEntry& entry = it->second;
  if (!entry.sessions) {
    emitLog(handle, "debug", "FunctionFS placeholder: " + detail);
    return;
  }
  DeviceLink* link = findLink(handle);
  switch (e) {
    case E::Enable: {
      // The host set a configuration holding our interface: a phone starts
      // a fresh mux session (the host begins with VERSION either way).
      if (link) linkClosed(*link, Fault(codes::kUnplugged, "FunctionFS re-enabled"));
      uint16_t mps = entry.function->currentMaxPacketSize(512);
      std::string error;
      auto transport = usb::FfsTransport::create(loop_, pool_, stats_, entry.function->outFd(),
                                                 entry.function->inFd(), mps, error);
      if (!transport) {
        emitLog(handle, "error", "FunctionFS ENABLE: cannot start a session: " + error);
        return;
      }
      emitLog(handle, "info", "FunctionFS ENABLE: wMaxPacketSize " + std::to_string(mps));
      startDeviceSession(handle, std::move(transport), entry.options);
      return;
    }
    case E::Disable:
    case E::Unbind:
      // Unconfigured (SET_CONFIGURATION 0 or another configuration) or the
      // UDC unbound (an unplug): the session ends. Its requests may already
      // have failed with ESHUTDOWN and ended it first.
      emitLog(handle, "info", "FunctionFS " + detail);
      if (link) {
        linkClosed(*link, Fault(codes::kUnplugged, std::string("FunctionFS ") + detail +
                                                       ": the host unconfigured or unplugged us"));
      }
      return;
    case E::Setup: emitLog(handle, "debug", "FunctionFS " + detail); return;
    default: emitLog(handle, "info", "FunctionFS " + detail); return;
  }
}

void Engine::closeFfs(uint32_t handle) {
  auto f = ffs_.find(handle);
  if (f == ffs_.end()) return;
  f->second.function->close();
  // This may run inside the function's own ep0 callback (onFfsEvent).
  loop_.retire(f->second.function);
  ffs_.erase(f);
}

}  // namespace tsmuxd::engine
