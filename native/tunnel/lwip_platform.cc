// What lwIP needs from its platform when NO_SYS=1: a millisecond clock, a
// random source, somewhere to report a broken invariant, and the Internet
// checksum (it runs over every byte the daemon sends into a tunnel).
#include <sys/random.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "lwip/sys.h"
}

extern "C" u32_t sys_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return u32_t(uint64_t(ts.tv_sec) * 1000u + uint64_t(ts.tv_nsec) / 1000000u);
}

extern "C" uint32_t tsmuxd_lwip_rand(void) {
  uint32_t value = 0;
  // getrandom() of 4 bytes never blocks once the pool is initialised and is
  // never short; a failure (seccomp) falls back to the clock.
  if (getrandom(&value, sizeof value, 0) != sizeof value) value = uint32_t(sys_now()) * 2654435761u;
  return value;
}

extern "C" void tsmuxd_lwip_assert_failed(const char* message, const char* file, int line) {
  std::fprintf(stderr, "tsmuxd: lwIP assertion failed at %s:%d: %s\n", file, line, message);
  std::abort();
}

// RFC 1071's sum of 16-bit words, taken 32 bits at a time into four 64-bit
// accumulators (no carry can be lost before 2^32 words) and folded at the
// end. Words are loaded in host order from wherever they lie (memcpy), which
// is what lwIP's own algorithms return: the one's-complement sum does not
// care about byte order, so the caller's htons/ntohs still apply. lwIP's
// algorithm 3 took 8 % of the daemon's CPU in a tunnel upload.
extern "C" uint16_t tsmuxd_lwip_chksum(const void* data, int len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t n = len > 0 ? size_t(len) : 0;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  while (n >= 16) {
    uint32_t w[4];
    std::memcpy(w, p, 16);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
    p += 16;
    n -= 16;
  }
  uint64_t sum = a + b + c + d;  // each < 2^62 for any u16-sized buffer
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    sum += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    sum += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint16_t w = 0;
    std::memcpy(&w, p, 1);  // the odd byte is the first byte of a word
    sum += w;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}
