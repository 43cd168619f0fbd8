#include "tunnel/stack.h"

#include <mutex>

extern "C" {
#include "lwip/init.h"
#include "lwip/timeouts.h"
}

namespace tsmuxd::tunnel {

namespace {
// Lock order: ownerMutex is taken alone, only to claim or release; lwIP is
// never called under it except lwip_init(), once.
std::mutex ownerMutex;
Stack* theStack = nullptr;
bool lwipInitialised = false;
}  // namespace

Stack* Stack::claim(core::EventLoop& loop, const void* owner, std::string& error) {
  std::lock_guard<std::mutex> lock(ownerMutex);
  if (!theStack) theStack = new Stack();  // lives as long as the process, as lwIP's globals do
  if (theStack->owner_ && theStack->owner_ != owner) {
    error = "lwIP is one stack per process and another engine in this process runs tunnels; "
            "run the phone's side of a tunnel (the sim) in a process of its own";
    return nullptr;
  }
  if (!lwipInitialised) {
    lwip_init();
    lwipInitialised = true;
  }
  theStack->owner_ = owner;
  theStack->loop_ = &loop;
  return theStack;
}

void Stack::release(const void* owner) {
  std::lock_guard<std::mutex> lock(ownerMutex);
  if (!theStack || theStack->owner_ != owner) return;
  // The owner's loop has stopped, so its timer is gone with it.
  theStack->owner_ = nullptr;
  theStack->loop_ = nullptr;
  theStack->timer_ = 0;
  theStack->tunnels_ = 0;
}

void Stack::tunnelUp() {
  if (tunnels_++ == 0) armTimer();
}

void Stack::tunnelDown() {
  if (tunnels_ > 0 && --tunnels_ == 0 && timer_) {
    loop_->cancelTimer(timer_);
    timer_ = 0;
  }
}

// The next check is when lwIP's next timeout is due, but never later than
// one TCP tick: lwIP may add its TCP timer (tcp_timer_needed) at any time
// without telling us.
void Stack::armTimer() {
  uint32_t next = sys_timeouts_sleeptime();
  uint32_t delay = next < uint32_t(TCP_TMR_INTERVAL) ? next : uint32_t(TCP_TMR_INTERVAL);
  timer_ = loop_->addTimer(delay == 0 ? 1 : delay, [this] {
    timer_ = 0;
    sys_check_timeouts();
    if (tunnels_ > 0) armTimer();
  });
}

}  // namespace tsmuxd::tunnel
