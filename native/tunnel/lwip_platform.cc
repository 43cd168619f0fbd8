// What lwIP needs from its platform when NO_SYS=1: a millisecond clock, a
// random source, and somewhere to report a broken invariant.
#include <sys/random.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>

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
