#pragma once
// The capture tap (docs/capture.md): where the data path hands a copy of what
// crosses the daemon to the captures running now. The event loop holds a
// pointer to the engine's tap only while at least one capture runs, so the
// data path's whole cost without one is a null test:
//
//   if (core::CaptureTap* tap = loop_.captureTap()) tap->muxPacket(...);
//
// With one, each record is copied into each capture's bounded ring; a full
// ring drops the record and counts it. Nothing here waits for a writer.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/capture_ring.h"

namespace tsmuxd::core {

// What a capture takes: every device or the listed handles; every port or
// one device port (a mux connection's, or a TCP/UDP port inside a tunnel).
// With a port, mux control packets are left out.
struct CaptureFilter {
  bool allDevices = true;
  std::vector<uint32_t> handles;
  uint16_t port = 0;
};

// Which pcapng interface a record belongs to; the writer numbers them in the
// order it meets them, and the drop counts are kept by the same key.
enum class CaptureInterface : uint8_t { MuxTcp = 0, MuxControl = 1, Tunnel = 2 };
inline uint64_t captureInterfaceKey(CaptureInterface kind, uint32_t source) {
  return (uint64_t(kind) << 32) | source;
}
// The interface of a mux packet, from its protocol field (6 is TCP).
CaptureInterface muxInterfaceOf(const uint8_t* packet, size_t len);

// One running capture, shared by the tap (producer, event thread) and its
// writer (consumer, its own thread).
class CaptureSink {
 public:
  CaptureSink(uint32_t id, size_t ringBytes, CaptureFilter filter, int wakeFd);

  const uint32_t id;
  CaptureRing ring;
  // The writer sets this before it sleeps on wakeFd; the producer clears it
  // and writes the eventfd, so a busy writer costs no syscall per record.
  std::atomic<bool> writerSleeping{false};
  const int wakeFd;
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> dropped{0};

  // Event thread only, until the tap has let go of the sink; the writer
  // reads dropsByInterface after that (docs: the stop sequence).
  CaptureFilter filter;
  std::unordered_set<uint32_t> labelled;
  std::unordered_map<uint64_t, uint64_t> dropsByInterface;

  // Producer: pushes or counts a drop against `interfaceKey`; wakes a sleeping writer.
  bool offer(const CaptureRecord& header, const uint8_t* data, size_t len, uint64_t interfaceKey);
  void wakeWriter();
  bool wants(uint32_t handle) const;
};

class CaptureTap {
 public:
  // ---- event thread ----
  void add(std::shared_ptr<CaptureSink> sink);
  // The sink gets no more records once this returns.
  std::shared_ptr<CaptureSink> remove(uint32_t id);
  // Capture `id` takes `handle` too (a filtered capture's phone, replugged).
  void allow(uint32_t id, uint32_t handle);
  bool empty() const { return sinks_.empty(); }
  // A mux packet as it goes to the device or comes from it.
  void muxPacket(uint32_t handle, CaptureDirection direction, const uint8_t* packet, size_t len,
                 size_t headerSize);
  // An IPv6 packet as it enters or leaves a tunnel.
  void tunnelPacket(uint32_t tunnel, uint32_t device, CaptureDirection direction, const uint8_t* packet,
                    size_t len);
  // A key log line of a TLS session on the event thread (the tunnels').
  void secret(const char* line, size_t len);
  // What names a device handle from now on (its UDID).
  void label(uint32_t handle, std::string text);

  // ---- any thread ----
  // A key log line from the JS thread (node's TLS sessions): it enters every
  // ring before the next packet the event thread records, so before the
  // bytes its session writes after the line was handed over.
  void postSecret(std::string line);
  bool running() const { return sinkCount_.load(std::memory_order_acquire) > 0; }
  // Event thread: what postSecret() holds, into the rings now.
  void takePostedSecrets();

 private:
  void labelFor(CaptureSink& sink, uint32_t handle, uint64_t timeUs);
  static uint64_t wallClockUs();

  std::vector<std::shared_ptr<CaptureSink>> sinks_;
  std::unordered_map<uint32_t, std::string> labels_;
  std::atomic<int> sinkCount_{0};
  std::atomic<bool> secretsPosted_{false};
  std::mutex secretsMutex_;
  std::vector<std::string> postedSecrets_;
};

// Caps on what a capture asks for (its ring) and on one key log line.
constexpr size_t kMinCaptureRingBytes = 64 << 10;
constexpr size_t kMaxCaptureRingBytes = 256 << 20;
constexpr size_t kDefaultCaptureRingBytes = 32 << 20;
constexpr size_t kMaxSecretLineBytes = 1024;
// Device handles one capture's filter may list (a phone replugged gets a new one).
constexpr size_t kMaxCaptureHandles = 256;
// Secrets from JS held while the event thread has not taken them.
constexpr size_t kMaxPostedSecrets = 1024;

}  // namespace tsmuxd::core
