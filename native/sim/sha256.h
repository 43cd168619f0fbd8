#pragma once
// SHA-256 (FIPS 180-4) for the simulated phone's sink and source, which prove
// what they received or sent. Streaming: update() any number of times, then
// digest() once.
#include <array>
#include <cstddef>
#include <cstdint>

namespace tsmuxd::sim {

class Sha256 {
 public:
  Sha256();
  void update(const uint8_t* data, size_t len);
  std::array<uint8_t, 32> digest();

 private:
  void block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t bufLen_ = 0;
  uint64_t totalBytes_ = 0;
};

}  // namespace tsmuxd::sim
