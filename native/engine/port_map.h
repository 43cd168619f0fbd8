#pragma once
// The device role's port map: which local socket (or in-process service) a
// SYN for a device port reaches. One per device-role link.
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "engine/device_role.h"

namespace tsmuxd::engine {

class PortMap {
 public:
  void map(uint16_t port, LocalTarget target) { ports_[port] = std::move(target); }
  void unmap(uint16_t port) { ports_.erase(port); }
  void setDefaultLoopback(bool on) { defaultLoopback_ = on; }

  // The in-process service a port maps to, if any (a one-shot mapping is
  // used up by asking).
  std::shared_ptr<InProcessService> takeService(uint16_t port);
  // Opens the local socket for a SYN; returns fd, or -1 with `error` (an errno).
  int openLocal(uint16_t port, bool& connecting, int& error);

 private:
  std::unordered_map<uint16_t, LocalTarget> ports_;
  bool defaultLoopback_ = true;
};

}  // namespace tsmuxd::engine
