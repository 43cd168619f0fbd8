/* lwIP's platform hooks for tsmuxd (Linux, gcc or clang, any word size). */
#ifndef TSMUXD_LWIP_ARCH_CC_H
#define TSMUXD_LWIP_ARCH_CC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ISNs and ports come from the kernel's random source (tunnel/lwip_platform.cc). */
uint32_t tsmuxd_lwip_rand(void);
/* An lwIP invariant broke: that is a bug in lwIP or in how we drive it; the
 * stack's state can no longer be trusted, so the process stops with the
 * reason rather than corrupt memory. */
void tsmuxd_lwip_assert_failed(const char* message, const char* file, int line);
/* The Internet checksum of len bytes, as lwIP's own functions return it
 * (tunnel/lwip_platform.cc: 64 bits at a time, any alignment). */
uint16_t tsmuxd_lwip_chksum(const void* data, int len);

#ifdef __cplusplus
}
#endif

#define LWIP_RAND() tsmuxd_lwip_rand()
#define LWIP_CHKSUM tsmuxd_lwip_chksum
#define LWIP_PLATFORM_DIAG(x) do { printf x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) tsmuxd_lwip_assert_failed((x), __FILE__, __LINE__)

/* errno values come from the C library. */
#define LWIP_ERRNO_STDINCLUDE 1
#define LWIP_NO_UNISTD_H 0

#endif /* TSMUXD_LWIP_ARCH_CC_H */
