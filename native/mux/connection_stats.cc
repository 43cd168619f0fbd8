// What the stats request sees of a connection, and the RTT sampling behind
// it; kept apart from the protocol logic in connection.cc.
#include "mux/connection.h"

namespace tsmuxd::mux {

void Connection::finishRttSample() {
  double sample = double(core::EventLoop::nowUs() - rttStartUs_);
  rttStartUs_ = 0;
  // RFC 6298's smoothing (alpha 1/8); the first sample stands alone.
  srttUs_ = rttSamples_ ? srttUs_ + (sample - srttUs_) / 8 : sample;
  ++rttSamples_;
}

// ---- stats ----

namespace {
const char* stateName(Connection::State s) {
  switch (s) {
    case Connection::State::SynSent: return "synSent";
    case Connection::State::SynReceived: return "synReceived";
    case Connection::State::SynAckSent: return "synAckSent";
    case Connection::State::Established: return "established";
    case Connection::State::Draining: return "draining";
    case Connection::State::Closed: return "closed";
  }
  return "unknown";
}
}  // namespace

void Connection::snapshot(mux::ConnectionSnapshot& out, uint64_t nowUs) const {
  bool host = role_ == Role::Host;
  out.conn = id_;
  out.handle = handle_;
  out.role = host ? "host" : "device";
  out.state = stateName(state_);
  out.devicePort = host ? remotePort_ : localPort_;
  out.sourcePort = host ? localPort_ : remotePort_;
  out.bytesToDevice = host ? bytesOut_ : bytesIn_;
  out.bytesFromDevice = host ? bytesIn_ : bytesOut_;
  out.sendWindow = sndWnd_;
  out.receiveWindow = rcvWnd_;
  bool open = state_ == State::Established || state_ == State::Draining;
  out.inFlight = open ? sndNxt_ - sndUna_ : 0;
  out.queued = inbound_.size() + directBytes_;
  out.stalls = stalls_;
  out.rttMs = rttSamples_ ? srttUs_ / 1000.0 : -1;
  out.rttSamples = rttSamples_;
  out.ageMs = nowUs > createdUs_ ? double(nowUs - createdUs_) / 1000.0 : 0;
}

}  // namespace tsmuxd::mux
