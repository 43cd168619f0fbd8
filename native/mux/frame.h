#pragma once
// The mux wire format: an outer header (v1: 8 bytes, v2: 16 bytes) and, for
// protocol TCP, a 20-byte TCP-shaped header. Every field is big-endian.
#include <cstddef>
#include <cstdint>

#include "core/byte_order.h"
#include "core/fault.h"

namespace tsmuxd::mux {

enum Protocol : uint32_t {
  kProtoVersion = 0,
  kProtoControl = 1,
  kProtoSetup = 2,
  kProtoTcp = 6,
};

constexpr size_t kHeaderSizeV1 = 8;
constexpr size_t kHeaderSizeV2 = 16;
constexpr size_t kTcpHeaderSize = 20;
constexpr size_t kVersionBodySize = 12;
constexpr uint32_t kMagic = 0xFEEDFACE;
// A phone rejects any single message above this ("message was too large").
constexpr size_t kMaxPacketLength = 65535;
// What we send at most: 3 x 16 KiB, as every known host does.
constexpr size_t kMaxSendLength = 49152;
constexpr unsigned kWindowShift = 8;
constexpr uint32_t kMaxWindow = 0xFFFFu << kWindowShift;
constexpr uint8_t kSetupLogLevel = 0x07;

enum TcpFlag : uint8_t {
  kFin = 0x01,
  kSyn = 0x02,
  kRst = 0x04,
  kPsh = 0x08,
  kAck = 0x10,
};

enum ControlType : uint8_t {
  kControlError = 3,
  kControlWarning = 5,
  kControlInfo = 7,
};

using core::getBe16;
using core::getBe32;
using core::putBe16;
using core::putBe32;

inline size_t headerSizeFor(int version) { return version >= 2 ? kHeaderSizeV2 : kHeaderSizeV1; }

struct MuxHeader {
  uint32_t protocol = 0;
  uint32_t length = 0;
  uint32_t magic = kMagic;
  uint16_t txSeq = 0;
  uint16_t rxSeq = 0;
};

struct TcpHeader {
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint8_t dataOffset = 5;  // in 32-bit words; the mux never carries options
  uint8_t flags = 0;
  uint16_t window = 0;  // scaled: bytes >> kWindowShift
};

bool isKnownProtocol(uint32_t protocol);

// Checks an outer header's protocol and length before any body is touched.
Fault checkHeader(uint32_t protocol, uint32_t length, size_t headerSize);

void writeMuxHeader(uint8_t* out, size_t headerSize, const MuxHeader& h);
MuxHeader readMuxHeader(const uint8_t* in, size_t headerSize);

void writeTcpHeader(uint8_t* out, const TcpHeader& t);
// Parses and validates a TCP header from a body of `len` bytes.
Fault readTcpHeader(const uint8_t* in, size_t len, TcpHeader& out);

// Converts between bytes and the 16-bit scaled window field, rounding down.
inline uint16_t scaleWindow(uint32_t bytes) {
  uint32_t scaled = bytes >> kWindowShift;
  return scaled > 0xFFFF ? 0xFFFF : uint16_t(scaled);
}
inline uint32_t unscaleWindow(uint16_t field) { return uint32_t(field) << kWindowShift; }

}  // namespace tsmuxd::mux
