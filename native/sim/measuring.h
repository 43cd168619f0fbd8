#pragma once
// The measuring services' protocol (src/sim/services/measuring.ts), apart
// from how bytes reach it: a socket (test_service.cc, for direct access) or a
// mux connection inside the simulated phone (builtin_io.cc). Echo returns
// what it gets, sink answers a request with the SHA-256 of its body (or
// zeros), source answers a request with a stream and its digest.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "sim/sha256.h"

namespace tsmuxd::sim {

enum class TestServiceKind { Echo, Sink, Source };

class Measuring {
 public:
  explicit Measuring(TestServiceKind kind);

  // How many more peer bytes consume() takes now (an echo holds at most
  // kMaxPending unsent bytes; the others take everything).
  size_t inputRoom() const;
  // Takes up to inputRoom() bytes; returns how many it took.
  size_t consume(const uint8_t* p, size_t n);
  // What is ready for the peer; refills from a source's stream when empty.
  const uint8_t* outData();
  size_t outSize() const { return out_.size() - outAt_; }
  void sent(size_t n);
  bool hasOutput();

  static constexpr size_t kMaxPending = 256 << 10;

 private:
  void appendDigest();
  void refill();

  TestServiceKind kind_;
  std::vector<uint8_t> out_;
  size_t outAt_ = 0;
  uint8_t header_[8] = {};
  size_t headerLen_ = 0;
  bool inBody_ = false;
  uint64_t remaining_ = 0;
  uint64_t streamLeft_ = 0;
  bool digestDue_ = false;
  bool hashed_ = false;
  Sha256 hash_;
  std::mt19937_64 rng_;
};

}  // namespace tsmuxd::sim
