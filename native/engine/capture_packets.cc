#include "engine/capture_packets.h"

#include <cstring>

#include "mux/frame.h"

namespace tsmuxd::engine {

namespace {

constexpr size_t kIpv6HeaderSize = 40;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kHopLimit = 64;
// NOP, then window scale (kind 3, length 3) by the mux's shift: Wireshark
// then shows the window in bytes, as the mux means it.
constexpr uint8_t kWindowScaleOption[4] = {1, 3, 3, mux::kWindowShift};
// A CONTROL text longer than this is cut in the comment (the bytes stay whole).
constexpr size_t kMaxCommentText = 200;

uint64_t sumWords(const uint8_t* p, size_t len, uint64_t sum) {
  // 32-bit loads into a 64-bit sum: carries are folded once at the end.
  while (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    sum += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    sum += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    // A trailing odd byte is the high byte of a zero-padded word, in
    // network order; in the host's (little-endian) order that is the low one.
    uint8_t last[2] = {p[0], 0};
    uint16_t w;
    std::memcpy(&w, last, 2);
    sum += w;
  }
  return sum;
}

uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return uint16_t(~sum);
}

}  // namespace

void captureAddress(uint32_t handle, bool device, uint8_t out[16]) {
  static const uint8_t kPrefix[6] = {0xfd, 0x74, 0x73, 0x6d, 0x75, 0x78};
  std::memset(out, 0, 16);
  std::memcpy(out, kPrefix, sizeof kPrefix);
  mux::putBe32(out + 6, handle);
  out[15] = device ? 2 : 1;
}

uint16_t tcpIpv6Checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t* tcpHeader, size_t headerLen,
                         const uint8_t* payload, size_t payloadLen) {
  uint8_t pseudo[40] = {};
  std::memcpy(pseudo, src, 16);
  std::memcpy(pseudo + 16, dst, 16);
  mux::putBe32(pseudo + 32, uint32_t(headerLen + payloadLen));
  pseudo[39] = kIpProtoTcp;
  uint64_t sum = sumWords(pseudo, sizeof pseudo, 0);
  sum = sumWords(tcpHeader, headerLen, sum);
  // The header's length is even, so the payload's words line up after it.
  sum = sumWords(payload, payloadLen, sum);
  uint16_t folded = fold(sum);
  // The sum was taken in host order; the field is written in network order.
  return uint16_t((folded >> 8) | (folded << 8));
}

bool syntheticTcp(uint32_t handle, core::CaptureDirection direction, const uint8_t* packet, size_t len,
                  size_t muxHeaderSize, SyntheticTcp& out) {
  if ((muxHeaderSize != mux::kHeaderSizeV1 && muxHeaderSize != mux::kHeaderSizeV2) || len < muxHeaderSize) return false;
  if (mux::getBe32(packet) != mux::kProtoTcp) return false;
  mux::TcpHeader th;
  if (mux::readTcpHeader(packet + muxHeaderSize, len - muxHeaderSize, th)) return false;
  out.payload = packet + muxHeaderSize + mux::kTcpHeaderSize;
  out.payloadLen = len - muxHeaderSize - mux::kTcpHeaderSize;
  bool syn = th.flags & mux::kSyn;
  size_t tcpLen = mux::kTcpHeaderSize + (syn ? sizeof kWindowScaleOption : 0);
  if (kIpv6HeaderSize + tcpLen + out.payloadLen > kIpv6HeaderSize + 0xFFFF) return false;

  uint8_t* ip = out.header;
  uint8_t* tcp = out.header + kIpv6HeaderSize;
  bool toDevice = direction == core::CaptureDirection::ToDevice;
  std::memset(ip, 0, kIpv6HeaderSize);
  ip[0] = 0x60;
  mux::putBe16(ip + 4, uint16_t(tcpLen + out.payloadLen));
  ip[6] = kIpProtoTcp;
  ip[7] = kHopLimit;
  captureAddress(handle, !toDevice, ip + 8);
  captureAddress(handle, toDevice, ip + 24);

  th.dataOffset = uint8_t(tcpLen / 4);
  mux::writeTcpHeader(tcp, th);  // checksum and urgent pointer zero
  if (syn) std::memcpy(tcp + mux::kTcpHeaderSize, kWindowScaleOption, sizeof kWindowScaleOption);
  uint16_t checksum = tcpIpv6Checksum(ip + 8, ip + 24, tcp, tcpLen, out.payload, out.payloadLen);
  mux::putBe16(tcp + 16, checksum);
  out.headerLen = kIpv6HeaderSize + tcpLen;
  return true;
}

std::string describeMuxPacket(const uint8_t* packet, size_t len, size_t muxHeaderSize) {
  if (len < mux::kHeaderSizeV1) return "a mux packet of " + std::to_string(len) + " bytes";
  uint32_t protocol = mux::getBe32(packet);
  // VERSION is v1-framed whatever was agreed.
  size_t header = protocol == mux::kProtoVersion ? mux::kHeaderSizeV1 : muxHeaderSize;
  if (len < header) return "a mux packet of " + std::to_string(len) + " bytes";
  const uint8_t* body = packet + header;
  size_t bodyLen = len - header;
  switch (protocol) {
    case mux::kProtoVersion:
      if (bodyLen < 8) return "VERSION, short body";
      return "VERSION " + std::to_string(mux::getBe32(body)) + "." + std::to_string(mux::getBe32(body + 4));
    case mux::kProtoSetup:
      return bodyLen ? "SETUP log level " + std::to_string(body[0]) : "SETUP";
    case mux::kProtoControl: {
      if (bodyLen == 0) return "CONTROL, empty";
      const char* type = body[0] == mux::kControlError     ? "error"
                         : body[0] == mux::kControlWarning ? "warning"
                         : body[0] == mux::kControlInfo    ? "info"
                                                           : "type " ;
      std::string text(reinterpret_cast<const char*>(body + 1), bodyLen - 1 > kMaxCommentText ? kMaxCommentText : bodyLen - 1);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
      for (char& c : text) if (static_cast<unsigned char>(c) < 0x20) c = ' ';
      std::string kind = type;
      if (kind == "type ") kind += std::to_string(body[0]);
      return "CONTROL " + kind + ": " + text;
    }
    case mux::kProtoTcp:
      return "TCP with a broken header (" + std::to_string(bodyLen) + "-byte body)";
    default:
      return "mux protocol " + std::to_string(protocol);
  }
}

}  // namespace tsmuxd::engine
