#pragma once
// The one lwIP stack of this process. lwIP keeps its PCB lists, netifs and
// timers in globals and is built NO_SYS=1, with no locks, so exactly one
// thread may ever touch it: the event thread of the engine that claimed it.
// Every tunnel of that engine is a netif of this stack. A second engine in
// the same process (tests that run a daemon and a phone side by side) is
// refused with a clear error instead of sharing it; the phone's side of a
// tunnel therefore lives in a sim process of its own.
//
// Timers: while any tunnel is up, a loop timer calls sys_check_timeouts()
// when lwIP's next timeout is due: every TCP_TMR_INTERVAL while a stream has
// data in flight or owes an ACK, every 250 ms otherwise; with no tunnel up,
// lwIP costs no wakeups.
#include <cstdint>
#include <string>

#include "core/event_loop.h"

namespace tsmuxd::tunnel {

class Stack {
 public:
  // Claims the stack for `owner`, whose tunnels run on `loop`'s thread.
  // Called on that thread. Null, with `error`, if another owner has it.
  static Stack* claim(core::EventLoop& loop, const void* owner, std::string& error);
  // The owner is stopping; its tunnels are all closed. Any thread, after the
  // owner's loop has stopped.
  static void release(const void* owner);

  // A netif came up or went down (event thread).
  void tunnelUp();
  void tunnelDown();
  // Something was sent or received: if the timer sleeps for the idle tick
  // while TCP now needs the fine one, wake it sooner (end of a turn).
  void poke();

 private:
  Stack() = default;
  void armTimer();

  core::EventLoop* loop_ = nullptr;
  const void* owner_ = nullptr;
  core::EventLoop::TimerId timer_ = 0;
  int tunnels_ = 0;
  bool idleArmed_ = false;  // the timer waits kIdleTickMs (stack.cc)
};

}  // namespace tsmuxd::tunnel
