// The zero-window limit: a peer whose window stays shut while we have bytes
// for it is given up on after SessionOptions::zeroWindowTimeoutMs. Kept apart
// from the protocol logic in connection.cc.
//
// There are no zero-window probes. TCP needs them because the ACK that
// reopens a window can be lost; the mux runs over USB (or the cable), which
// loses nothing, so the peer's window update always arrives and a probe
// could only tell us what the next ACK will.
#include <string>

#include "mux/connection.h"
#include "mux/device_session.h"

namespace tsmuxd::mux {

void Connection::watchZeroWindow() {
  if (zeroWindowTimeoutMs_ == 0 || state_ != State::Established) return;
  if (!zeroWindowSinceMs_) zeroWindowSinceMs_ = core::EventLoop::nowMs();
  if (!zeroWindowTimer_) armZeroWindowTimer(zeroWindowTimeoutMs_);
}

void Connection::armZeroWindowTimer(uint64_t delayMs) {
  std::weak_ptr<Connection> weak = weak_from_this();
  zeroWindowTimer_ = loop_.addTimer(delayMs, [weak] {
    if (auto c = weak.lock()) {
      c->zeroWindowTimer_ = 0;
      c->zeroWindowExpired();
    }
  });
}

void Connection::stopZeroWindowWatch() {
  if (zeroWindowTimer_) loop_.cancelTimer(zeroWindowTimer_);
  zeroWindowTimer_ = 0;
  zeroWindowSinceMs_ = 0;
}

void Connection::zeroWindowExpired() {
  if (state_ != State::Established || !session_ || !zeroWindowSinceMs_) return;
  uint64_t now = core::EventLoop::nowMs();
  uint64_t shut = now - zeroWindowSinceMs_;
  if (shut < zeroWindowTimeoutMs_) {  // it opened and shut again meanwhile
    armZeroWindowTimer(zeroWindowTimeoutMs_ - shut);
    return;
  }
  // A shut window that holds nothing back is no stall: the clock stops, and
  // the local side's next bytes find the window shut and start it again.
  if (!io_ || !io_->outputWaiting()) {
    zeroWindowSinceMs_ = 0;
    return;
  }
  // Holding bytes the peer sent that our local side has not taken means the
  // peer may be stalled on us (it cannot write, so it stops reading): not
  // its fault. Start again.
  if (!inbound_.empty() || directBytes_ > 0) {
    zeroWindowSinceMs_ = now;
    armZeroWindowTimer(zeroWindowTimeoutMs_);
    return;
  }
  EngineStats::add(stats_->zeroWindowResets, 1);
  violation("the peer's window stayed shut for " + std::to_string(shut) +
            " ms with data waiting to be sent (window " + std::to_string(sndWnd_) + " bytes, " +
            std::to_string(sndNxt_ - sndUna_) + " unacknowledged)");
}

}  // namespace tsmuxd::mux
