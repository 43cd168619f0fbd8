#pragma once
// A listening socket in the loop's epoll set: accepts every connection the
// kernel has queued and hands each fd (non-blocking, close-on-exec) to its
// owner. Used by the cable listener and the usbmuxd socket's front door.
//
// Edge-triggered, so a turn that stops early (kAcceptsPerTurn reached, or
// out of descriptors) arms a timer to come back: no new edge would come for
// connections already queued.
#include <functional>

#include "core/event_loop.h"

namespace tsmuxd::core {

class Acceptor : public Pollable {
 public:
  using OnAccept = std::function<void(int fd)>;
  // Accepts per readiness edge before other work gets a turn.
  static constexpr int kAcceptsPerTurn = 64;
  // Retry delay after EMFILE and friends: descriptors may be freed by then.
  static constexpr uint64_t kRetryAfterMs = 100;

  // Takes `fd`, a listening socket.
  Acceptor(EventLoop& loop, int fd, OnAccept onAccept);
  ~Acceptor() override;
  void onPoll(uint32_t events) override;
  void close();

 private:
  void comeBack(uint64_t delayMs);

  EventLoop& loop_;
  int fd_;
  OnAccept onAccept_;
  EventLoop::TimerId retryTimer_ = 0;
};

}  // namespace tsmuxd::core
