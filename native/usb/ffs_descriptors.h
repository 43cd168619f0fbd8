#pragma once
// The blobs a FunctionFS function writes to ep0 before the gadget can bind:
// v2 descriptors (one interface and its endpoints, at full and high speed)
// and its string table. Written byte by byte in little-endian, not through
// packed kernel structs, so every length is ours to check.
#include <cstdint>
#include <string>
#include <vector>

#include "core/fault.h"

namespace tsmuxd::usb {

struct FfsEndpointSpec {
  bool in = false;
  bool interrupt = false;  // else bulk
  // Interrupt endpoints only (bulk ones take the interface's sizes): the
  // same wMaxPacketSize at both speeds, and the polling interval in ms.
  uint16_t interruptMaxPacket = 64;
  uint8_t intervalMs = 8;
};

struct FfsInterfaceSpec {
  // The Apple USB Multiplexor triple, as a phone's mux interface carries it.
  uint8_t interfaceClass = 0xff;
  uint8_t subclass = 0xfe;
  uint8_t protocol = 0x02;
  std::string name = "Apple USB Multiplexor";
  // wMaxPacketSize of every bulk endpoint at each speed.
  uint16_t fullSpeedMaxPacket = 64;
  uint16_t highSpeedMaxPacket = 512;
  // In descriptor order, which is also the order of the ep1, ep2...
  // files. The mux: OUT then IN, as a phone lists them (usbmuxd logs
  // "endpoints 04/85").
  std::vector<FfsEndpointSpec> endpoints = {FfsEndpointSpec{false}, FfsEndpointSpec{true}};
};

struct FfsBlobs {
  std::vector<uint8_t> descriptors;
  std::vector<uint8_t> strings;
};

// The mux spec's endpoint files.
constexpr const char* kFfsOutEndpointFile = "ep1";
constexpr const char* kFfsInEndpointFile = "ep2";
constexpr size_t kFfsMaxEndpoints = 15;

// Fails on a name that is not printable ASCII of 1..126 characters (a string
// descriptor holds at most 126 UTF-16 units), more than 15 endpoints, or a
// wMaxPacketSize or interval an endpoint of that type cannot have.
Fault buildFfsBlobs(const FfsInterfaceSpec& spec, FfsBlobs& out);

}  // namespace tsmuxd::usb
