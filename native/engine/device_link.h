#pragma once
// One attached device as the engine holds it: its transport, and once the
// control plane has accepted it, its mux session. In the host role the first
// transfer is the cable's descriptor, which JS sees before anything opens.
//
// The link stands between the two layers that must not see each other: it
// is the transport's handler (usb) and the session's carrier (mux).
//
// Lifetime: the engine owns links through shared_ptrs made by
// EventLoop::makeRetiring, so dropping one from inside its own transport's
// callback frees it only after the turn.
#include <memory>
#include <string>

#include "engine/port_map.h"
#include "mux/device_session.h"
#include "mux/link.h"
#include "usb/transport.h"

namespace tsmuxd::engine {

class Engine;

class DeviceLink : public usb::TransportHandler, public mux::PacketLink {
 public:
  DeviceLink(Engine& engine, uint32_t handle, mux::Role role,
             std::unique_ptr<usb::Transport> transport);
  ~DeviceLink() override;

  uint32_t handle() const { return handle_; }
  mux::Role role() const { return role_; }
  mux::DeviceSession* session() { return session_.get(); }
  usb::Transport& transport() { return *transport_; }
  // Device role: where incoming connections go.
  PortMap& ports() { return ports_; }

  void startSession(const mux::SessionOptions& options);
  // The transport described the device itself (libusb): no descriptor
  // transfer is expected before the session starts.
  void markDescribed() { described_ = true; }
  // Daemon-initiated removal: RST every connection, then drop the link.
  void shutdown();
  // The link died under us: connections flush what they have, then close.
  void lost(const std::string& reason);

  // usb::TransportHandler
  void onTransfer(const uint8_t* data, size_t len) override;
  void onTransferBatchEnd() override;
  void onTransportDrained() override;
  void onTransportClosed(const Fault& why) override;

  // mux::PacketLink
  void send(core::OutPacket packet, bool zlp) override { transport_->send(std::move(packet), zlp); }
  bool congested() const override { return transport_->congested(); }
  uint16_t maxPacketSize() const override { return transport_->maxPacketSize(); }

 private:
  Engine& engine_;
  uint32_t handle_;
  mux::Role role_;
  std::unique_ptr<usb::Transport> transport_;
  std::unique_ptr<mux::DeviceSession> session_;
  bool described_ = false;
  PortMap ports_;
};

}  // namespace tsmuxd::engine
