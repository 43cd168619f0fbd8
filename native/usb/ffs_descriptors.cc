#include "usb/ffs_descriptors.h"

#include <linux/usb/functionfs.h>

namespace tsmuxd::usb {

namespace {

constexpr uint8_t kInterfaceDescriptorType = 4;
constexpr uint8_t kEndpointDescriptorType = 5;
constexpr uint8_t kInterfaceLength = 9;
constexpr uint8_t kEndpointLength = 7;  // bulk: no bRefresh/bSynchAddress
constexpr uint8_t kBulk = 2;
// Endpoint numbers here only name the endpoints to FunctionFS; the UDC picks
// the addresses the host sees.
constexpr uint8_t kOutAddress = 0x01;
constexpr uint8_t kInAddress = 0x82;
constexpr uint32_t kDescriptorsPerSpeed = 3;  // interface, OUT, IN

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
                     2,  // bNumEndpoints
                     s.interfaceClass, s.subclass, s.protocol,
                     1});  // iInterface: the first string of our table
}

void putEndpoint(std::vector<uint8_t>& v, uint8_t address, uint16_t maxPacket) {
  v.insert(v.end(), {kEndpointLength, kEndpointDescriptorType, address, kBulk});
  put16(v, maxPacket);
  v.push_back(0);  // bInterval: bulk endpoints never NAK-limit
}

bool validMaxPacket(uint16_t mps, bool highSpeed) {
  // USB 2.0 9.6.6: full-speed bulk 8, 16, 32 or 64; high-speed bulk exactly 512.
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
  if (!validMaxPacket(spec.fullSpeedMaxPacket, false) || !validMaxPacket(spec.highSpeedMaxPacket, true)) {
    return Fault(codes::kInvalidArgument,
                 "bulk wMaxPacketSize must be 8/16/32/64 at full speed and 512 at high speed");
  }

  std::vector<uint8_t>& d = out.descriptors;
  d.clear();
  put32(d, FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
  put32(d, 0);  // total length, patched below
  put32(d, FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC);
  put32(d, kDescriptorsPerSpeed);  // fs_count
  put32(d, kDescriptorsPerSpeed);  // hs_count
  for (uint16_t mps : {spec.fullSpeedMaxPacket, spec.highSpeedMaxPacket}) {
    putInterface(d, spec);
    putEndpoint(d, kOutAddress, mps);
    putEndpoint(d, kInAddress, mps);
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
