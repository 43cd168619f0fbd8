#include "usb/ffs_descriptors.h"

#include <linux/usb/functionfs.h>

namespace tsmuxd::usb {

namespace {

constexpr uint8_t kInterfaceDescriptorType = 4;
constexpr uint8_t kEndpointDescriptorType = 5;
constexpr uint8_t kInterfaceLength = 9;
constexpr uint8_t kEndpointLength = 7;  // bulk: no bRefresh/bSynchAddress
constexpr uint8_t kBulk = 2;
constexpr uint8_t kInterrupt = 3;

void put16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(uint8_t(x));
  v.push_back(uint8_t(x >> 8));
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int i = 0; i < 4; ++i) v.push_back(uint8_t(x >> (8 * i)));
}

void patch32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  for (int i = 0; i < 4; ++i) v[at + i] = uint8_t(x >> (8 * i));
}

void putInterface(std::vector<uint8_t>& v, const FfsInterfaceSpec& s) {
  v.insert(v.end(), {kInterfaceLength, kInterfaceDescriptorType,
                     0,  // bInterfaceNumber: FunctionFS renumbers within the configuration
                     0,  // bAlternateSetting
                     uint8_t(s.endpoints.size()), s.interfaceClass, s.subclass, s.protocol,
                     1});  // iInterface: the first string of our table
}

// Endpoint numbers here only name the endpoints to FunctionFS (1, 2, ... in
// order); the UDC picks the addresses the host sees.
void putEndpoint(std::vector<uint8_t>& v, size_t index, const FfsEndpointSpec& e, uint16_t bulkMps,
                 bool highSpeed) {
  uint8_t address = uint8_t(index + 1) | (e.in ? 0x80 : 0);
  uint16_t mps = e.interrupt ? e.interruptMaxPacket : bulkMps;
  uint8_t interval = 0;  // bulk endpoints are never polled
  if (e.interrupt) {
    // Full speed counts in frames (1 ms); high speed in 2^(b-1) microframes.
    interval = e.intervalMs;
    if (highSpeed) {
      uint8_t b = 1;
      while (b < 16 && (1u << (b - 1)) < 8u * e.intervalMs) ++b;
      interval = b;
    }
  }
  v.insert(v.end(), {kEndpointLength, kEndpointDescriptorType, address, e.interrupt ? kInterrupt : kBulk});
  put16(v, mps);
  v.push_back(interval);
}

bool validBulkMaxPacket(uint16_t mps, bool highSpeed) {
  // USB 2.0 5.8.3: full-speed bulk 8, 16, 32 or 64; high-speed bulk exactly 512.
  if (highSpeed) return mps == 512;
  return mps == 8 || mps == 16 || mps == 32 || mps == 64;
}

}  // namespace

Fault buildFfsBlobs(const FfsInterfaceSpec& spec, FfsBlobs& out) {
  if (spec.name.empty() || spec.name.size() > 126) {
    return Fault(codes::kInvalidArgument, "interface name must be 1..126 characters");
  }
  for (char c : spec.name) {
    if (c < 0x20 || c > 0x7e) return Fault(codes::kInvalidArgument, "interface name must be printable ASCII");
  }
  if (!validBulkMaxPacket(spec.fullSpeedMaxPacket, false) ||
      !validBulkMaxPacket(spec.highSpeedMaxPacket, true)) {
    return Fault(codes::kInvalidArgument,
                 "bulk wMaxPacketSize must be 8/16/32/64 at full speed and 512 at high speed");
  }
  if (spec.endpoints.size() > kFfsMaxEndpoints) {
    return Fault(codes::kInvalidArgument, "at most 15 endpoints");
  }
  for (const FfsEndpointSpec& e : spec.endpoints) {
    // USB 2.0 5.7.3: at most 64 bytes at full speed, which both speeds share here.
    if (e.interrupt && (e.interruptMaxPacket < 1 || e.interruptMaxPacket > 64 || e.intervalMs < 1)) {
      return Fault(codes::kInvalidArgument,
                   "interrupt endpoints need wMaxPacketSize 1..64 and an interval of 1..255 ms");
    }
  }

  std::vector<uint8_t>& d = out.descriptors;
  d.clear();
  put32(d, FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
  put32(d, 0);  // total length, patched below
  put32(d, FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC);
  uint32_t perSpeed = uint32_t(1 + spec.endpoints.size());  // the interface, then its endpoints
  put32(d, perSpeed);  // fs_count
  put32(d, perSpeed);  // hs_count
  for (bool high : {false, true}) {
    putInterface(d, spec);
    for (size_t i = 0; i < spec.endpoints.size(); ++i) {
      putEndpoint(d, i, spec.endpoints[i], high ? spec.highSpeedMaxPacket : spec.fullSpeedMaxPacket, high);
    }
  }
  patch32(d, 4, uint32_t(d.size()));

  std::vector<uint8_t>& s = out.strings;
  s.clear();
  put32(s, FUNCTIONFS_STRINGS_MAGIC);
  put32(s, 0);  // total length, patched below
  put32(s, 1);  // str_count
  put32(s, 1);  // lang_count
  put16(s, 0x0409);  // en-US
  s.insert(s.end(), spec.name.begin(), spec.name.end());
  s.push_back(0);
  patch32(s, 4, uint32_t(s.size()));
  return Fault();
}

}  // namespace tsmuxd::usb
