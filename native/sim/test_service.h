#pragma once
// The simulated phone's measuring services (echo on device port 7, sink on 9,
// source on 19; protocol in src/sim/services/sink.ts and source.ts), served
// on the engine's event thread in C++. In JS they cost a callback per chunk,
// which under QEMU's TCG (the USB lab, where JIT code runs translated) made
// the sim, not the daemon, the bottleneck of every figure. Each listens on a
// loopback TCP port or a Unix path, like the other sim services, so the
// device role reaches them the same way and benchmarks can also reach them
// directly.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/event_loop.h"
#include "engine/device_role.h"
#include "sim/measuring.h"

namespace tsmuxd::sim {

class TestServiceConn;

class TestServiceListener : public core::Pollable, public engine::HostedService {
 public:
  // Binds and listens now (on the caller's thread) so the address is known
  // at once; start() on the loop thread begins accepting. `address` is the
  // TCP port in decimal, or the path.
  static std::shared_ptr<TestServiceListener> open(core::EventLoop& loop, TestServiceKind kind,
                                                   const std::string& path, std::string& address,
                                                   std::string& error);
  ~TestServiceListener() override;

  void start() override;
  // Closes the listening socket and every connection (loop thread).
  void close() override;
  void onPoll(uint32_t events) override;
  void connectionClosed(TestServiceConn* conn);

 private:
  TestServiceListener(core::EventLoop& loop, TestServiceKind kind, int fd, std::string path);

  core::EventLoop& loop_;
  TestServiceKind kind_;
  int fd_;
  std::string path_;  // unlinked on close
  std::unordered_map<TestServiceConn*, std::shared_ptr<TestServiceConn>> conns_;
};

}  // namespace tsmuxd::sim
