#pragma once
// A measuring service (measuring.h) as the local end of a mux connection
// inside the simulated phone: the bytes go between the connection's queues
// and the protocol with no socket in between. Under the lab's TCG every
// syscall is dear, and a loopback hop costs two or more per packet on the
// phone's side, which is not what a daemon benchmark should measure.
#include <memory>

#include "mux/connection.h"
#include "core/event_loop.h"
#include "sim/measuring.h"

namespace tsmuxd::sim {

class BuiltinServiceIo : public mux::ConnectionIo, public core::Deferred {
 public:
  BuiltinServiceIo(core::EventLoop& loop, TestServiceKind kind) : loop_(loop), protocol_(kind) {}

  // Binds to the connection and, at the end of the turn, accepts it.
  void start(mux::Connection* conn);

  size_t offer(const struct iovec* iov, int count) override;
  void inboundReady() override { loop_.defer(this); }
  void sendReady() override { loop_.defer(this); }
  void finish() override;
  void abort() override { closed_ = true; }
  void runDeferred() override;

 private:
  size_t takeInbound();
  bool sendOutput();

  core::EventLoop& loop_;
  Measuring protocol_;
  mux::Connection* conn_ = nullptr;
  bool accepted_ = false;
  bool finishing_ = false;
  bool closed_ = false;
};

}  // namespace tsmuxd::sim
