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
constexpr uint8_t kTcp = 6;
constexpr size_t kTcpHeaderSize = 20;
constexpr uint8_t kTcpEndOfOptions = 0;
constexpr uint8_t kTcpNoOperation = 1;

// A TCP header and its options at [at, len): the data offset within the
// packet, and each option's length byte and body inside the header. lwIP's
// tcp_parseopt reads an option's length byte before it checks it (found by
// the lwip_input fuzzer: a segment with no data ending in an option kind).
bool tcpHeaderFits(const uint8_t* packet, size_t at, size_t len) {
  if (len - at < kTcpHeaderSize) return false;
  size_t headerLength = size_t(packet[at + 12] >> 4) * 4;
  if (headerLength < kTcpHeaderSize || len - at < headerLength) return false;
  size_t end = at + headerLength;
  for (size_t o = at + kTcpHeaderSize; o < end;) {
    uint8_t kind = packet[o];
    if (kind == kTcpEndOfOptions) break;
    if (kind == kTcpNoOperation) {
      ++o;
      continue;
    }
    if (end - o < 2 || packet[o + 1] < 2 || end - o < packet[o + 1]) return false;
    o += packet[o + 1];
  }
  return true;
}

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

bool headersFit(const uint8_t* packet, size_t len) {
  if (len < kIpv6HeaderSize) return false;
  uint8_t next = packet[6];
  size_t at = kIpv6HeaderSize;
  for (;;) {
    if (next == kTcp) return tcpHeaderFits(packet, at, len);
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
