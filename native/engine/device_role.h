#pragma once
// The device role as the engine runs it (the phone's side of a link, for the
// simulator): its options and where an incoming connection goes. Services
// that run inside the engine (the sim's measuring services) plug in through
// InProcessService, so the engine needs nothing from sim/.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/event_loop.h"
#include "mux/connection.h"

namespace tsmuxd::engine {

// A service served on the event thread itself, with no socket between it and
// the connection.
class InProcessService {
 public:
  virtual ~InProcessService() = default;
  // Event thread: takes `conn` (a SYN that just arrived) and serves it.
  virtual void serve(core::EventLoop& loop, const std::shared_ptr<mux::Connection>& conn) = 0;
};

// Something the engine keeps running on its thread until it stops (the sim's
// measuring listeners): started on the event thread, closed there at stop.
class HostedService {
 public:
  virtual ~HostedService() = default;
  virtual void start() = 0;
  virtual void close() = 0;
};

// Where the simulated phone's kernel connects for a device port.
struct LocalTarget {
  std::string host;  // TCP when path is empty
  uint16_t port = 0;
  std::string path;  // a Unix socket
  // A port StartService hands out serves one connection, as on a phone.
  bool once = false;
  // Served inside the engine instead of over a socket.
  std::shared_ptr<InProcessService> service;
};

struct DeviceRoleOptions {
  uint32_t window = 128 << 10;  // what a phone advertises
  int version = 2;
  bool controlLogs = true;
  bool defaultLoopback = true;  // unmapped ports go to 127.0.0.1:<port>
  std::vector<std::pair<uint16_t, LocalTarget>> portMap;
};

}  // namespace tsmuxd::engine
