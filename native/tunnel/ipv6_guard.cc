#include "tunnel/ipv6_guard.h"

#include "tunnel/limits.h"

namespace tsmuxd::tunnel {

namespace {

constexpr uint8_t kHopByHop = 0;
constexpr uint8_t kRouting = 43;
constexpr uint8_t kFragment = 44;
constexpr uint8_t kDestinationOptions = 60;
constexpr size_t kFragmentHeaderSize = 8;
constexpr uint8_t kPad1 = 0;  // the one option with no length byte

// The options of a Hop-by-Hop or Destination Options header: [begin, end).
bool optionsFit(const uint8_t* packet, size_t begin, size_t end) {
  size_t at = begin;
  while (at < end) {
    if (packet[at] == kPad1) {
      ++at;
      continue;
    }
    if (end - at < 2) return false;  // the length byte is outside the header
    at += 2 + size_t(packet[at + 1]);
    if (at > end) return false;
  }
  return true;
}

}  // namespace

bool extensionHeadersFit(const uint8_t* packet, size_t len) {
  if (len < kIpv6HeaderSize) return false;
  uint8_t next = packet[6];
  size_t at = kIpv6HeaderSize;
  for (;;) {
    if (next != kHopByHop && next != kRouting && next != kFragment && next != kDestinationOptions) return true;
    if (len - at < 8) return false;  // every extension header is at least 8 bytes
    size_t headerLength = next == kFragment ? kFragmentHeaderSize : 8 * (1 + size_t(packet[at + 1]));
    if (len - at < headerLength) return false;
    if ((next == kHopByHop || next == kDestinationOptions) && !optionsFit(packet, at + 2, at + headerLength)) {
      return false;
    }
    next = packet[at];
    at += headerLength;
  }
}

}  // namespace tsmuxd::tunnel
