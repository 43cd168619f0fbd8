#pragma once
// Checks an IPv6 packet's extension-header chain before lwIP sees it.
// lwIP 2.1.3's ip6_input reads a Hop-by-Hop or Destination Options header's
// first two bytes, and each option's length byte, before it checks that they
// are inside the packet: a phone that sends such a header cut short makes it
// read past the end of the buffer (found by test/fuzz/native/lwip_input_fuzz.cc).
// Its tcp_parseopt does the same with a TCP option's length byte. We drop
// those packets here instead, so every byte lwIP reads is inside the packet.
#include <cstddef>
#include <cstdint>

namespace tsmuxd::tunnel {

// False when a Hop-by-Hop, Routing, Fragment or Destination Options header,
// an option inside one, or a TCP header or one of its options does not fit
// in the packet. `packet` is a whole
// IPv6 packet of `len` bytes (at least the 40-byte header).
bool headersFit(const uint8_t* packet, size_t len);

}  // namespace tsmuxd::tunnel
