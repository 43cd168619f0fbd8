#pragma once
// One pseudo-TCP connection as the event thread saw it, for the stats request
// and `tsmuxd top`. The connection fills it (Connection::snapshot); it lives
// in mux so that mux needs nothing from the engine that collects it.
#include <cstdint>

namespace tsmuxd::mux {

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

}  // namespace tsmuxd::mux
