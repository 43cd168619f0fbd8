#pragma once
// The blobs a FunctionFS function writes to ep0 before the gadget can bind:
// v2 descriptors (one interface with a bulk OUT and a bulk IN endpoint, at
// full and high speed) and its string table. Written byte by byte in
// little-endian, not through packed kernel structs, so every length is ours
// to check.
#include <cstdint>
#include <string>
#include <vector>

#include "mux/fault.h"

namespace tsmuxd::usb {

struct FfsInterfaceSpec {
  // The Apple USB Multiplexor triple, as a phone's mux interface carries it.
  uint8_t interfaceClass = 0xff;
  uint8_t subclass = 0xfe;
  uint8_t protocol = 0x02;
  std::string name = "Apple USB Multiplexor";
  uint16_t fullSpeedMaxPacket = 64;
  uint16_t highSpeedMaxPacket = 512;
};

struct FfsBlobs {
  std::vector<uint8_t> descriptors;
  std::vector<uint8_t> strings;
};

// Endpoint files follow descriptor order: ep1 is OUT, ep2 is IN. A phone
// lists its mux endpoints OUT first too (usbmuxd logs "endpoints 04/85").
constexpr const char* kFfsOutEndpointFile = "ep1";
constexpr const char* kFfsInEndpointFile = "ep2";

// Fails on a name that is not printable ASCII of 1..126 characters (a string
// descriptor holds at most 126 UTF-16 units) or a wMaxPacketSize a bulk
// endpoint cannot have at that speed.
Fault buildFfsBlobs(const FfsInterfaceSpec& spec, FfsBlobs& out);

}  // namespace tsmuxd::usb
