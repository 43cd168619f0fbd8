#pragma once
// A loopback listener that speaks go-ios's userspace-tunnel preamble, so
// tools written for `ios tunnel start --userspace` reach a tsmuxd tunnel:
// each client first sends 16 bytes of IPv6 destination and a u32
// little-endian port, then the stream (go-ios userspace_tunnel.go; reference
// §1.4). We read exactly those 20 bytes, so nothing of the stream is taken
// early, then hand the socket to the tunnel.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

extern "C" {
#include "lwip/ip6_addr.h"
}

#include "core/event_loop.h"

namespace tsmuxd::tunnel {

class PreambleListener : public core::Pollable {
 public:
  // A client's preamble arrived: the socket (ours to own) and where it goes.
  using OnPreamble = std::function<void(int fd, const ip6_addr_t& address, uint16_t port)>;
  using OnLog = std::function<void(const std::string& text)>;

  // Binds and listens on the calling thread (so the port is known at once);
  // start() then runs it on the loop. -1 with `error` on failure.
  static int bindListener(const std::string& host, uint16_t port, uint16_t& boundPort, std::string& error);
  PreambleListener(core::EventLoop& loop, int fd, OnPreamble onPreamble, OnLog onLog);
  ~PreambleListener() override;

  void start();
  void close();
  void onPoll(uint32_t events) override;

 private:
  class Reader;
  void readerDone(Reader* reader, int fd, const uint8_t* preamble, const std::string& failure);

  core::EventLoop& loop_;
  int fd_;
  OnPreamble onPreamble_;
  OnLog onLog_;
  std::unordered_map<Reader*, std::shared_ptr<Reader>> readers_;
};

}  // namespace tsmuxd::tunnel
