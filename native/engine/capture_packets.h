#pragma once
// What a capture writes for each mux packet (docs/capture.md):
//   - a TCP packet becomes IPv6 + TCP, with the mux's own ports, sequence
//     numbers, flags and window and a valid checksum, between two addresses
//     derived from the device handle, so Wireshark follows and decrypts it;
//   - VERSION, SETUP and CONTROL (and a TCP packet whose header is broken)
//     go as they are, mux header and all, with a comment saying what they are.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/capture_ring.h"

namespace tsmuxd::engine {

// IPv6 (40) + TCP (20) + the window-scale option a SYN carries (4).
constexpr size_t kMaxSyntheticHeader = 64;

// The addresses a device's connections appear between: fd74:736d:7578
// ("tsmux"), the handle, then ::1 for the host and ::2 for the device.
void captureAddress(uint32_t handle, bool device, uint8_t out[16]);

struct SyntheticTcp {
  uint8_t header[kMaxSyntheticHeader];
  size_t headerLen = 0;
  const uint8_t* payload = nullptr;
  size_t payloadLen = 0;
};

// False when `packet` is not a well-formed mux TCP packet (then it goes to
// the control interface, with describeMuxPacket()'s comment).
bool syntheticTcp(uint32_t handle, core::CaptureDirection direction, const uint8_t* packet, size_t len,
                  size_t muxHeaderSize, SyntheticTcp& out);

// "VERSION 2.0", "SETUP log level 7", "CONTROL info: text"...
std::string describeMuxPacket(const uint8_t* packet, size_t len, size_t muxHeaderSize);

// The internet checksum of the pseudo header and segment (RFC 8200 §8.1).
uint16_t tcpIpv6Checksum(const uint8_t src[16], const uint8_t dst[16], const uint8_t* tcpHeader, size_t headerLen,
                         const uint8_t* payload, size_t payloadLen);

}  // namespace tsmuxd::engine
