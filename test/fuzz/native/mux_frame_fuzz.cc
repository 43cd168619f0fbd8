// Fuzzes the mux header and TCP header parsers (native/mux/frame.*): every
// outer header is checked before a body is touched, a parsed header writes
// back to the same bytes, and the window scaling never grows a window.
#include <cstring>
#include <vector>

#include "fuzz_check.h"
#include "mux/frame.h"

using namespace tsmuxd;
using namespace tsmuxd::mux;

namespace {

void checkOuterHeader(const uint8_t* data, size_t size, size_t headerSize) {
  if (size < headerSize) return;
  // Exact-size copy: a read past the header is an ASan report, not a pass.
  std::vector<uint8_t> in(data, data + headerSize);
  MuxHeader h = readMuxHeader(in.data(), headerSize);
  Fault f = checkHeader(h.protocol, h.length, headerSize);
  if (!f) {
    FUZZ_CHECK(isKnownProtocol(h.protocol), "accepted protocol %u", h.protocol);
    FUZZ_CHECK(h.length >= headerSize && h.length <= kMaxPacketLength,
               "accepted length %u with a %zu-byte header", h.length, headerSize);
  } else {
    FUZZ_CHECK(f.code && !f.message.empty(), "a fault without a code or message");
  }
  std::vector<uint8_t> out(headerSize);
  writeMuxHeader(out.data(), headerSize, h);
  FUZZ_CHECK(std::memcmp(out.data(), in.data(), headerSize) == 0,
             "mux header (%zu bytes) did not round-trip", headerSize);
}

void checkTcpHeader(const uint8_t* data, size_t size) {
  std::vector<uint8_t> in(data, data + size);
  TcpHeader th;
  Fault f = readTcpHeader(in.data(), in.size(), th);
  if (size < kTcpHeaderSize) {
    FUZZ_CHECK(f && std::strcmp(f.code, codes::kShortBody) == 0, "short TCP body accepted");
    return;
  }
  FUZZ_CHECK(bool(f) == (th.dataOffset != 5), "data offset %u but fault=%d", th.dataOffset,
             int(bool(f)));
  if (f) return;
  uint8_t out[kTcpHeaderSize];
  writeTcpHeader(out, th);
  // Bytes 16..19 (checksum, urgent pointer) and the low nibble of byte 12
  // are not carried by the mux: writeTcpHeader zeroes them.
  FUZZ_CHECK(std::memcmp(out, in.data(), 12) == 0, "TCP ports/seq/ack did not round-trip");
  FUZZ_CHECK((out[12] >> 4) == (in[12] >> 4) && out[13] == in[13] &&
                 std::memcmp(out + 14, in.data() + 14, 2) == 0,
             "TCP offset/flags/window did not round-trip");
}

void checkWindow(uint32_t bytes) {
  uint16_t field = scaleWindow(bytes);
  uint32_t back = unscaleWindow(field);
  // Rounding down only: advertising more than we have would let the peer
  // overrun our buffer.
  FUZZ_CHECK(back <= bytes, "window %u scaled up to %u", bytes, back);
  if (bytes <= kMaxWindow) {
    FUZZ_CHECK(bytes - back < (1u << kWindowShift), "window %u lost %u bytes", bytes,
               bytes - back);
  } else {
    FUZZ_CHECK(back == kMaxWindow, "window %u not capped (%u)", bytes, back);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  checkOuterHeader(data, size, kHeaderSizeV1);
  checkOuterHeader(data, size, kHeaderSizeV2);
  // The TCP header as it follows a v1 or a v2 outer header, and at offset 0.
  checkTcpHeader(data, size);
  if (size >= kHeaderSizeV1) checkTcpHeader(data + kHeaderSizeV1, size - kHeaderSizeV1);
  if (size >= kHeaderSizeV2) checkTcpHeader(data + kHeaderSizeV2, size - kHeaderSizeV2);
  if (size >= 4) checkWindow(getBe32(data));
  return 0;
}
