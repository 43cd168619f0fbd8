// TUN mode of a host-role tunnel (tunnel.h, attachTun()): the kernel and
// lwIP share the host's tunnel address. lwIP keeps the streams the daemon
// opens itself (TunnelConnect, the preamble listener), whose local ports it
// takes from kLwipLocalPortFirst up; every other packet for the host goes
// to the kernel, and what the kernel sends goes into the tunnel as one TLS
// record per packet, exactly as lwIP's packets do.
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstring>

extern "C" {
#include "lwip/tcp.h"
}

#include "tunnel/limits.h"
#include "tunnel/tunnel.h"

namespace tsmuxd::tunnel {

static_assert(TCP_LOCAL_PORT_RANGE_START == kLwipLocalPortFirst,
              "lwipopts.h and limits.h must agree on where lwIP's own ports start");

namespace {

constexpr uint8_t kNextHeaderTcp = 6;
constexpr size_t kSourceOffset = 8;
constexpr size_t kDestinationOffset = 24;

}  // namespace

void Tunnel::attachTun(int fd, std::string name) {
  if (state_ != State::Running || tunFd_ >= 0) {
    ::close(fd);
    return;
  }
  tunFd_ = fd;
  tunName_ = std::move(name);
  tunBuffer_.resize(kMaxIpv6Packet);
  tunPort_ = std::make_unique<TunPort>(*this);
  loop_.add(tunFd_, tunPort_.get(), EPOLLIN);
  log("info", "tunnel " + std::to_string(id_) + ": kernel interface " + tunName_);
  readTun();  // edge-triggered: whatever the kernel queued before we registered
}

// A TCP segment to one of lwIP's ports stays in userspace; everything else
// for the host is the kernel's. Only a TCP header right after the IPv6
// header counts: lwIP's own peers send no extension headers.
bool Tunnel::kernelOwns(const uint8_t* packet, size_t len) const {
  if (len < kIpv6HeaderSize + 4 || packet[6] != kNextHeaderTcp) return true;
  uint16_t port = uint16_t(packet[kIpv6HeaderSize + 2] << 8 | packet[kIpv6HeaderSize + 3]);
  return port < kLwipLocalPortFirst;
}

void Tunnel::writeTun(const uint8_t* packet, size_t len) {
  ssize_t n = ::write(tunFd_, packet, len);
  if (n == ssize_t(len)) {
    ++counters_.packetsToKernel;
    return;
  }
  // A full queue drops the packet as a NIC does, and TCP sends it again.
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    ++counters_.droppedKernelFull;
    return;
  }
  ++counters_.droppedKernelFull;
  if (!tunWriteFailed_) {
    tunWriteFailed_ = true;
    log("warning", "tunnel " + std::to_string(id_) + ": writing to " + tunName_ + " failed: " +
                       (n < 0 ? std::string(std::strerror(errno)) : "a short write"));
  }
}

// What the kernel may put into the tunnel: whole IPv6 packets from the
// tunnel address, unicast, within the MTU. The kernel also sends router and
// listener solicitations and the like, to multicast or from a link-local
// address; a phone has no use for them.
bool Tunnel::kernelMaySend(const uint8_t* packet, size_t len) const {
  if (len < kIpv6HeaderSize || len > config_.mtu || (packet[0] >> 4) != 6) return false;
  size_t payload = size_t(packet[4]) << 8 | packet[5];
  if (payload + kIpv6HeaderSize != len) return false;
  if (packet[kDestinationOffset] == 0xFF) return false;
  return std::memcmp(packet + kSourceOffset, config_.localAddress.addr, 16) == 0;
}

void Tunnel::readTun() {
  tunBacklog_ = false;
  if (tunFd_ < 0 || state_ != State::Running || closing_) return;
  for (uint32_t i = 0; i < kTunReadsPerTurn; ++i) {
    // Backpressure: leave packets in the kernel's queue (it drops past its
    // txqueuelen) while the mux window holds ciphertext back.
    if (queuedBytes_ + tls_->pendingOutput() > kMaxQueuedCiphertext / 2) {
      tunBacklog_ = true;
      return;
    }
    ssize_t n = ::read(tunFd_, tunBuffer_.data(), tunBuffer_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        log("warning", "tunnel " + std::to_string(id_) + ": reading " + tunName_ + " failed: " + std::strerror(errno));
        closeTun();
      }
      return;
    }
    if (!kernelMaySend(tunBuffer_.data(), size_t(n))) {
      ++counters_.droppedKernelFiltered;
      continue;
    }
    ++counters_.packetsFromKernel;
    sendPacket(tunBuffer_.data(), size_t(n));
  }
  // More may be waiting: read on at the end of the turn, after the others.
  tunBacklog_ = true;
  loop_.defer(this);
}

void Tunnel::closeTun() {
  if (tunFd_ < 0) return;
  loop_.remove(tunFd_);
  ::close(tunFd_);  // the interface and its address go with the fd
  tunFd_ = -1;
  // tunPort_ stays until the tunnel goes: this may run inside its onPoll().
  tunBacklog_ = false;
}

}  // namespace tsmuxd::tunnel
