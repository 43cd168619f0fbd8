#include "mux/frame.h"

#include <string>

namespace tsmuxd::mux {

bool isKnownProtocol(uint32_t protocol) {
  return protocol == kProtoVersion || protocol == kProtoControl || protocol == kProtoSetup ||
         protocol == kProtoTcp;
}

Fault checkHeader(uint32_t protocol, uint32_t length, size_t headerSize) {
  if (!isKnownProtocol(protocol)) {
    return Fault(codes::kUnknownProtocol, "unknown mux protocol " + std::to_string(protocol));
  }
  if (length < headerSize) {
    return Fault(codes::kBadLength, "mux packet length " + std::to_string(length) +
                                        " is shorter than its " + std::to_string(headerSize) +
                                        "-byte header");
  }
  if (length > kMaxPacketLength) {
    return Fault(codes::kBadLength, "mux packet length " + std::to_string(length) +
                                        " exceeds " + std::to_string(kMaxPacketLength));
  }
  return Fault();
}

void writeMuxHeader(uint8_t* out, size_t headerSize, const MuxHeader& h) {
  putBe32(out, h.protocol);
  putBe32(out + 4, h.length);
  if (headerSize >= kHeaderSizeV2) {
    putBe32(out + 8, h.magic);
    putBe16(out + 12, h.txSeq);
    putBe16(out + 14, h.rxSeq);
  }
}

MuxHeader readMuxHeader(const uint8_t* in, size_t headerSize) {
  MuxHeader h;
  h.protocol = getBe32(in);
  h.length = getBe32(in + 4);
  if (headerSize >= kHeaderSizeV2) {
    h.magic = getBe32(in + 8);
    h.txSeq = getBe16(in + 12);
    h.rxSeq = getBe16(in + 14);
  } else {
    h.magic = 0;
  }
  return h;
}

void writeTcpHeader(uint8_t* out, const TcpHeader& t) {
  putBe16(out, t.sport);
  putBe16(out + 2, t.dport);
  putBe32(out + 4, t.seq);
  putBe32(out + 8, t.ack);
  out[12] = uint8_t(t.dataOffset << 4);
  out[13] = t.flags;
  putBe16(out + 14, t.window);
  putBe16(out + 16, 0);  // checksum: never used by the mux
  putBe16(out + 18, 0);  // urgent pointer
}

Fault readTcpHeader(const uint8_t* in, size_t len, TcpHeader& out) {
  if (len < kTcpHeaderSize) {
    return Fault(codes::kShortBody,
                 "TCP packet body of " + std::to_string(len) + " bytes is shorter than its header");
  }
  out.sport = getBe16(in);
  out.dport = getBe16(in + 2);
  out.seq = getBe32(in + 4);
  out.ack = getBe32(in + 8);
  out.dataOffset = uint8_t(in[12] >> 4);
  out.flags = in[13];
  out.window = getBe16(in + 14);
  if (out.dataOffset != 5) {
    return Fault(codes::kBadTcpOffset, "TCP data offset " + std::to_string(out.dataOffset) +
                                           " (the mux carries no options; it must be 5)");
  }
  return Fault();
}

}  // namespace tsmuxd::mux
