#pragma once
// A point-in-time view of every device link and connection, for the stats
// request and `tsmuxd top`. It is built on the event thread in one pass over
// the engine's maps when JS asks (Engine::snapshot), so the data path pays
// only for the plain counters it keeps anyway; nothing here is atomic.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tsmuxd::pipe {

struct ConnectionSnapshot {
  uint32_t conn = 0;
  uint32_t handle = 0;
  const char* role = "host";
  const char* state = "";
  uint16_t devicePort = 0;
  uint16_t sourcePort = 0;  // the host's end of the pair
  // Payload only; "to device" means host -> phone in either role.
  uint64_t bytesToDevice = 0;
  uint64_t bytesFromDevice = 0;
  uint32_t sendWindow = 0;     // the peer's last advertised window, unscaled
  uint32_t receiveWindow = 0;  // the window we advertise
  uint32_t inFlight = 0;       // sent, not yet ACKed by the peer
  uint64_t queued = 0;         // received, not yet taken by the local socket
  uint64_t stalls = 0;         // times the peer's window stopped us
  double rttMs = -1;           // smoothed; negative until the first sample
  uint32_t rttSamples = 0;
  double ageMs = 0;
};

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
  std::vector<ConnectionSnapshot> connections;
};

}  // namespace tsmuxd::pipe
