#pragma once
// Invariant checks for the fuzz harnesses. They stay on in every build (no
// NDEBUG), print what broke so a crash log says more than "trap", and stop
// the process so libFuzzer saves the input.
#include <cstdint>
#include <cstdio>

#define FUZZ_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "invariant broken at %s:%d: %s\n  ", __FILE__,     \
                   __LINE__, #cond);                                          \
      std::fprintf(stderr, __VA_ARGS__);                                      \
      std::fprintf(stderr, "\n");                                             \
      __builtin_trap();                                                       \
    }                                                                         \
  } while (0)

namespace tsmuxd::fuzz {

// Reads fields off the fuzz input front to back; past its end every field is
// zero, so a short input is still a whole (if dull) scenario.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  bool done() const { return pos_ >= n_; }
  size_t remaining() const { return pos_ < n_ ? n_ - pos_ : 0; }
  uint8_t u8() { return pos_ < n_ ? p_[pos_++] : 0; }
  uint16_t u16() {
    uint16_t hi = u8();
    return uint16_t((hi << 8) | u8());
  }
  uint32_t u32() {
    uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  // Up to `len` raw bytes, fewer at the end of the input.
  const uint8_t* bytes(size_t& len) {
    const uint8_t* at = p_ + (pos_ < n_ ? pos_ : n_);
    len = len < remaining() ? len : remaining();
    pos_ += len;
    return at;
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace tsmuxd::fuzz
