#pragma once
// One attached device as the engine holds it: its transport, and once the
// control plane has accepted it, its mux session. In the host role the first
// transfer is the cable's descriptor, which JS sees before anything opens.
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "mux/device_session.h"
#include "sim/measuring.h"
#include "usb/cable_descriptor.h"
#include "usb/transport.h"

namespace tsmuxd::pipe {

class Engine;

// Where the simulated phone's kernel connects for a device port.
struct LocalTarget {
  std::string host;  // TCP when path is empty
  uint16_t port = 0;
  std::string path;  // a Unix socket
  // A port StartService hands out serves one connection, as on a phone.
  bool once = false;
  // A measuring service served inside the engine (sim/builtin_io.h), no socket.
  std::optional<sim::TestServiceKind> builtin;
};

class DeviceLink : public usb::TransportHandler {
 public:
  DeviceLink(Engine& engine, uint32_t handle, mux::Role role,
             std::unique_ptr<usb::Transport> transport);
  ~DeviceLink() override;

  uint32_t handle() const { return handle_; }
  mux::Role role() const { return role_; }
  mux::DeviceSession* session() { return session_.get(); }
  usb::Transport& transport() { return *transport_; }

  void startSession(const mux::SessionOptions& options);
  // The transport described the device itself (libusb): no descriptor
  // transfer is expected before the session starts.
  void markDescribed() { described_ = true; }
  // Daemon-initiated removal: RST every connection, then drop the link.
  void shutdown();
  // The link died under us: connections flush what they have, then close.
  void lost(const std::string& reason);

  // Device role: port map for incoming connections.
  void mapPort(uint16_t port, LocalTarget target) { portMap_[port] = std::move(target); }
  void unmapPort(uint16_t port) { portMap_.erase(port); }
  void setDefaultLoopback(bool on) { defaultLoopback_ = on; }
  // Device role: the built-in service a port maps to, if any (a one-shot
  // mapping is used up by asking).
  std::optional<sim::TestServiceKind> takeBuiltin(uint16_t port);
  // Device role: opens the local socket for a SYN; returns fd, or -1 with errno.
  int openLocal(uint16_t port, bool& connecting, int& error);

  void onTransfer(const uint8_t* data, size_t len) override;
  void onTransferBatchEnd() override;
  void onTransportDrained() override;
  void onTransportClosed(const Fault& why) override;

 private:
  Engine& engine_;
  uint32_t handle_;
  mux::Role role_;
  std::unique_ptr<usb::Transport> transport_;
  std::unique_ptr<mux::DeviceSession> session_;
  bool described_ = false;
  std::unordered_map<uint16_t, LocalTarget> portMap_;
  bool defaultLoopback_ = true;
};

}  // namespace tsmuxd::pipe
