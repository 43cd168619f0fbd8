#pragma once
// A point-in-time view of every device link and connection, for the stats
// request and `tsmuxd top`. It is built on the event thread in one pass over
// the engine's maps when JS asks (Engine::requestSnapshot), so the data path
// pays only for the plain counters it keeps anyway; nothing here is atomic.
// Each connection fills its own mux::ConnectionSnapshot.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "mux/connection_snapshot.h"

namespace tsmuxd::engine {

struct DeviceSnapshot {
  uint32_t handle = 0;
  const char* role = "host";
  const char* state = "";
  int version = 0;
  uint64_t bytesToDevice = 0;    // TCP payload, every connection it ever had
  uint64_t bytesFromDevice = 0;
  uint64_t usbBytesOut = 0;      // whole mux packets
  uint64_t usbBytesIn = 0;
  uint32_t connections = 0;      // live in its session
  uint64_t connectionsTotal = 0;
  uint64_t queuedOut = 0;        // waiting in the transport's send queue
  bool congested = false;
};

struct EngineSnapshot {
  double timeMs = 0;  // CLOCK_MONOTONIC, for rates between two snapshots
  std::vector<DeviceSnapshot> devices;
  std::vector<mux::ConnectionSnapshot> connections;
};

}  // namespace tsmuxd::engine
