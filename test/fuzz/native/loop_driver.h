#pragma once
// Runs an EventLoop's turns by hand for the fuzz harnesses: the harness plays
// epoll (it hands transfers to the session itself), then calls endTurn() for
// the rest of a turn exactly as EventLoop::run() orders it: posted work, due
// timers, deferred work, then the graveyard.
//
// Time is virtual so that a 30 s drain timeout costs nothing: the harness's
// clock runs `skew` ms ahead of CLOCK_MONOTONIC. The loop stamps timers with
// the real clock, so each new timer is moved ahead by the skew of the moment
// it was added (adopt()). Rate limits and RTT samples still read the real
// clock; they do not decide any invariant checked here.
#include <cstdint>
#include <iterator>

#include "core/event_loop.h"

namespace tsmuxd::core {

class LoopDriver {
 public:
  explicit LoopDriver(EventLoop& loop) : loop_(loop) {}

  void advance(uint64_t ms) {
    adopt();
    skewMs_ += ms;
  }

  void endTurn() {
    adopt();
    loop_.runPosted();
    runTimers();
    loop_.runDeferred();
    adopt();
    loop_.freeRetired();
  }

  // Frees what retire() holds while the loop is still whole (its destructor
  // would free them after its own members are gone).
  void clearGraveyard() { loop_.freeRetired(); }

  size_t pendingTimers() const { return loop_.timers_.size(); }

 private:
  void adopt() {
    for (auto& [id, timer] : loop_.timers_) {
      if (id < firstUnadopted_) continue;
      auto range = loop_.timerOrder_.equal_range(timer.due);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == id) {
          loop_.timerOrder_.erase(it);
          break;
        }
      }
      timer.due += skewMs_;
      loop_.timerOrder_.emplace(timer.due, id);
    }
    firstUnadopted_ = loop_.nextTimer_;
  }

  void runTimers() {
    uint64_t now = EventLoop::nowMs() + skewMs_;
    while (!loop_.timerOrder_.empty() && loop_.timerOrder_.begin()->first <= now) {
      EventLoop::TimerId id = loop_.timerOrder_.begin()->second;
      loop_.timerOrder_.erase(loop_.timerOrder_.begin());
      auto it = loop_.timers_.find(id);
      if (it == loop_.timers_.end()) continue;
      auto fn = std::move(it->second.fn);
      loop_.timers_.erase(it);
      fn();
      adopt();  // a timer may start another (a handshake timeout starts a drain)
    }
  }

  EventLoop& loop_;
  uint64_t skewMs_ = 0;
  EventLoop::TimerId firstUnadopted_ = 1;
};

}  // namespace tsmuxd::core
