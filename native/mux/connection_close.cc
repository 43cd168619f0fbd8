// Connection: every way one ends. A protocol violation or a local failure
// resets it; the phone's RST drains what it had sent to the client (for at
// most kDrainTimeoutMs); a client that ends sends FIN; each path ends in
// finishClose(), exactly once.
#include "mux/connection.h"
#include "mux/device_session.h"

namespace tsmuxd::mux {

namespace {
constexpr uint64_t kDrainTimeoutMs = 30000;
}  // namespace

void Connection::violation(const std::string& what) {
  observer_.onConnectionLog(*this, what);
  // A phone says why it resets; the host just resets.
  sendControl(kRst, role_ == Role::Device ? what : std::string());
  drain(what);
}

void Connection::drain(const std::string& reason) {
  if (state_ == State::Draining || state_ == State::Closed) return;
  cancelTimer();
  spillDirect();
  state_ = State::Draining;
  closeReason_ = reason;
  // A draining connection sends nothing more and outlives its place in the
  // session (it may outlive the session itself, after an unplug).
  if (session_) session_->remove(*this);
  session_ = nullptr;
  // A local reader that never drains must not pin the connection forever.
  std::weak_ptr<Connection> weak = weak_from_this();
  timer_ = loop_.addTimer(kDrainTimeoutMs, [weak] {
    if (auto c = weak.lock()) {
      c->timer_ = 0;
      if (c->state_ != State::Draining) return;
      if (c->io_) c->io_->abort();
      c->finishClose(c->closeReason_ + " (undelivered bytes dropped after the drain timeout)");
    }
  });
  if (io_) {
    io_->finish();  // flushes what the peer sent, then calls ioFinished()
  } else if (role_ == Role::Device || inbound_.empty()) {
    finishClose(reason);
  }
  // A host connection with no client socket yet keeps its bytes for attach.
}

void Connection::ioFinished() { finishClose(closeReason_); }

void Connection::reset(const std::string& reason) {
  if (state_ == State::Closed) return;
  if (state_ != State::Draining) sendControl(kRst);
  if (state_ == State::SynSent) {
    closeFromHandshake("ECONNABORTED", reason);
    return;
  }
  if (io_) io_->abort();
  finishClose(reason);
}

void Connection::localEnded(const std::string& reason) {
  if (state_ == State::Closed) return;
  if (state_ == State::Draining) {
    finishClose(closeReason_);
    return;
  }
  sendControl(kRst);
  if (role_ == Role::Device && session_) {
    session_->controlLog(kControlInfo, "AppleUSBDeviceMux::sessionUpcall socket is closed, session " +
                                           hexText(id_));
  }
  if (io_) io_->abort();
  finishClose(reason);
}

void Connection::peerGone(const std::string& reason) {
  session_ = nullptr;  // the session is going away; nothing more is sent
  if (state_ == State::SynSent || state_ == State::SynReceived) {
    cancelTimer();
    state_ = State::Closed;
    if (io_) io_->abort();
    observer_.onConnectFailed(*this, "ENODEV", reason);
    return;
  }
  drain(reason);
}

void Connection::finishClose(const std::string& reason) {
  if (state_ == State::Closed) return;
  cancelTimer();
  state_ = State::Closed;
  std::shared_ptr<Connection> self = shared_from_this();
  if (session_) session_->remove(*this);
  direct_.clear();
  directBytes_ = 0;
  inbound_.clear();
  observer_.onConnectionClosed(*this, reason);
}

}  // namespace tsmuxd::mux
