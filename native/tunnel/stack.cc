#include "tunnel/stack.h"

#include <mutex>

extern "C" {
#include "lwip/init.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
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

namespace {

// How often the timers run while nothing is in flight: delayed ACKs and
// retransmissions need the fine tick, keep-alive of lwIP's own state
// (TIME_WAIT, nd6) does not.
constexpr uint32_t kIdleTickMs = 250;

// A stream has a segment waiting for its ACK or for the window, or owes an
// ACK: the TCP timer must run at its own interval.
bool tcpBusy() {
  for (struct tcp_pcb* pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
    if (pcb->unacked || pcb->unsent || (pcb->flags & TF_ACK_DELAY) || pcb->refused_data) return true;
  }
  return false;
}

}  // namespace

void Stack::poke() {
  if (!idleArmed_ || !timer_ || !tcpBusy()) return;
  loop_->cancelTimer(timer_);
  armTimer();
}

// The next check is when lwIP's next timeout is due, bounded by the fine
// tick while TCP is busy and by kIdleTickMs otherwise (lwIP's TCP timer is
// cyclic, so its own deadline is always the next fine tick).
void Stack::armTimer() {
  uint32_t next = sys_timeouts_sleeptime();
  uint32_t cap = tcpBusy() ? uint32_t(TCP_TMR_INTERVAL) : kIdleTickMs;
  uint32_t delay = next < cap ? next : cap;
  idleArmed_ = cap == kIdleTickMs;
  timer_ = loop_->addTimer(delay == 0 ? 1 : delay, [this] {
    timer_ = 0;
    sys_check_timeouts();
    if (tunnels_ > 0) armTimer();
  });
}

}  // namespace tsmuxd::tunnel
