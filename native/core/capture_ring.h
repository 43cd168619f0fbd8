#pragma once
// A bounded single-producer, single-consumer ring of capture records: the
// event thread copies what crosses the daemon in, a capture's writer thread
// takes it out. Neither side ever waits for the other: a record that does
// not fit is refused, and the producer counts it as dropped.
//
// Positions are 64-bit byte counts that only grow; a record sits at
// `position % capacity` and is never split: one that would cross the end is
// preceded by a padding record that fills the rest.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tsmuxd::core {

enum class CaptureKind : uint8_t {
  Padding = 0,
  Mux = 1,     // a whole mux packet (its header, then the body)
  Tunnel = 2,  // one IPv6 packet inside a CoreDeviceProxy tunnel
  Secret = 3,  // one key log line (SSLKEYLOGFILE format), no newline
  Label = 4,   // text naming a device handle, for its interfaces
};

enum class CaptureDirection : uint8_t { ToDevice = 0, FromDevice = 1 };

// Every record starts with this; data follows, padded to 8 bytes. `size` and
// `kind` come first so that a padding record needs only 8 bytes.
struct CaptureRecord {
  uint32_t size = 0;  // header + data + padding
  CaptureKind kind = CaptureKind::Padding;
  CaptureDirection direction = CaptureDirection::ToDevice;
  uint16_t aux = 0;     // Mux: the mux header's size (8 or 16)
  uint32_t dataLen = 0;
  uint32_t source = 0;  // the device handle (Mux, Label) or the tunnel id (Tunnel)
  uint32_t device = 0;  // Tunnel: its device's handle
  uint32_t reserved = 0;
  uint64_t timeUs = 0;  // wall clock, microseconds since the epoch
};
static_assert(sizeof(CaptureRecord) == 32, "capture record header layout");

class CaptureRing {
 public:
  // `capacity` is rounded up to a multiple of 8.
  explicit CaptureRing(size_t capacity);
  CaptureRing(const CaptureRing&) = delete;
  CaptureRing& operator=(const CaptureRing&) = delete;

  size_t capacity() const { return capacity_; }
  // Producer: copies the record in, or returns false (full, or larger than
  // the whole ring) and leaves the ring as it was.
  bool push(CaptureRecord header, const uint8_t* data, size_t len);
  // Consumer: the oldest record, valid until pop(); false when empty.
  bool front(CaptureRecord& header, const uint8_t*& data);
  void pop();
  // Either thread: bytes in use right now.
  size_t used() const;

 private:
  static constexpr size_t align8(size_t n) { return (n + 7) & ~size_t(7); }

  size_t capacity_;
  std::unique_ptr<uint8_t[]> bytes_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the producer
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the consumer
  uint64_t frontSize_ = 0;                     // consumer: the record front() returned
};

}  // namespace tsmuxd::core
