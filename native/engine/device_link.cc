#include "engine/device_link.h"

#include "engine/engine.h"

namespace tsmuxd::engine {

DeviceLink::DeviceLink(Engine& engine, uint32_t handle, mux::Role role,
                       std::unique_ptr<usb::Transport> transport)
    : engine_(engine), handle_(handle), role_(role), transport_(std::move(transport)) {
  transport_->setHandler(this);
  EngineStats::add(engine_.stats().devicesActive, 1);
}

DeviceLink::~DeviceLink() {
  transport_->close();
  EngineStats::sub(engine_.stats().devicesActive, 1);
}

void DeviceLink::startSession(const mux::SessionOptions& options) {
  if (session_) return;
  session_ = std::make_unique<mux::DeviceSession>(engine_.loop(), engine_.pool(), engine_.stats(),
                                                  *this, engine_, handle_, options);
  session_->start();
  transport_->setReading(true);
}

void DeviceLink::shutdown() {
  if (session_) session_->resetAll("device closed by the daemon");
  transport_->close();  // flushes what it can (the RSTs) first
  if (session_) session_->peerGone("device closed by the daemon");
}

void DeviceLink::lost(const std::string& reason) {
  transport_->close();
  if (session_) session_->peerGone(reason);
}

void DeviceLink::onTransfer(const uint8_t* data, size_t len) {
  if (session_) {
    session_->onTransfer(data, len);
    return;
  }
  if (described_ || len == 0) return;
  // Host role, before the control plane accepted the device: the first
  // transfer describes it, and nothing more is read until it is opened.
  auto descriptor = std::make_shared<usb::CableDescriptor>();
  Fault f = usb::decodeCableDescriptor(data, len, *descriptor);
  if (f) {
    engine_.linkClosed(*this, f);
    return;
  }
  described_ = true;
  transport_->setReading(false);
  NativeEvent ev(NativeEvent::Type::Attached);
  ev.handle = handle_;
  ev.descriptor = std::move(descriptor);
  engine_.emit(std::move(ev));
}

void DeviceLink::onTransferBatchEnd() {
  if (session_) session_->onTransferBatchEnd();
}

void DeviceLink::onTransportDrained() {
  if (session_) session_->onTransportDrained();
}

void DeviceLink::onTransportClosed(const Fault& why) { engine_.linkClosed(*this, why); }

}  // namespace tsmuxd::engine
