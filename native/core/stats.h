#pragma once
// Counters the data plane keeps for `tsmuxd top` and the benchmarks. Written
// on the event thread, read from JS at any time, so they are relaxed atomics.
#include <atomic>
#include <cstdint>

namespace tsmuxd {

struct EngineStats {
  using Counter = std::atomic<uint64_t>;
  Counter transfersOut{0};
  Counter transfersIn{0};
  Counter zlpsOut{0};
  Counter zlpsIn{0};
  Counter usbBytesOut{0};
  Counter usbBytesIn{0};
  Counter payloadBytesToDevice{0};    // TCP payload, local socket -> peer
  Counter payloadBytesFromDevice{0};  // TCP payload, peer -> local socket
  Counter packetsOut{0};
  Counter packetsIn{0};
  Counter acksOut{0};
  Counter rstsOut{0};
  Counter rstsIn{0};
  Counter controlIn{0};
  Counter logsSuppressed{0};
  Counter jsWakeups{0};
  Counter jsEvents{0};
  Counter windowStalls{0};  // times a sender found the peer's window closed
  Counter zeroWindowResets{0};  // connections given up on: the peer's window stayed shut
  Counter devicesActive{0};
  Counter connectionsActive{0};
  Counter connectionsTotal{0};

  static void add(Counter& c, uint64_t n) { c.fetch_add(n, std::memory_order_relaxed); }
  static void sub(Counter& c, uint64_t n) { c.fetch_sub(n, std::memory_order_relaxed); }
};

}  // namespace tsmuxd
