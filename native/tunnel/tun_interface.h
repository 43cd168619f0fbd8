#pragma once
// A kernel TUN interface for one host-role tunnel, so that every program on
// the machine reaches the phone at its tunnel address, as on a Mac.
//
// Made with the TUNSETIFF ioctl (which needs CAP_NET_ADMIN) and configured
// over rtnetlink from here, not by running iproute2's `ip`: netlink gives the
// address IFA_F_NODAD in the same message (an address under duplicate
// address detection is unusable for a second or more, and the probe would
// go into the tunnel), a failure comes back as an errno we can log, and the
// daemon needs no program that a minimal container may lack.
//
// The interface lives as long as its fd: it is not persistent, so closing
// the fd (the tunnel ending, the daemon dying) removes it and its address.
#include <cstdint>
#include <string>

extern "C" {
#include "lwip/ip6_addr.h"
}

namespace tsmuxd::tunnel {

// A name template with one %d: the kernel picks the lowest free number, so
// two daemons (or two tests) asking at once never get the same interface.
inline constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1
// Packets read from a TUN per loop turn before others get a turn.
inline constexpr uint32_t kTunReadsPerTurn = 64;

struct TunSetup {
  std::string namePattern;  // e.g. "tsmux%d"
  ip6_addr_t address{};     // the host's tunnel address
  uint8_t prefixLength = 64;
  // The interface MTU. The kernel derives its TCP MSS from it (MTU - 60),
  // so this is how the tunnel's conservative send MSS reaches programs that
  // use the kernel's TCP.
  uint32_t mtu = 1400;
};

// Makes the interface, brings it up with the address and MTU, and returns
// its fd (non-blocking, close-on-exec) and the name the kernel gave it, or
// -1 with `error` saying which step failed and why.
int openTunInterface(const TunSetup& setup, std::string& name, std::string& error);

}  // namespace tsmuxd::tunnel
