// Connection: the handshake in both roles. The host sends SYN and waits
// for SYN|ACK (or the connect timeout); the device accepts a SYN, connects
// to the local service first, and answers SYN|ACK or RST as a phone does.
#include <cerrno>

#include "mux/connection.h"
#include "mux/device_session.h"

namespace tsmuxd::mux {

namespace {
// Phones report errors with Darwin's errno numbers.
int darwinErrno(int linuxErrno) {
  switch (linuxErrno) {
    case ECONNREFUSED: return 61;
    case ETIMEDOUT: return 60;
    case ENETUNREACH: return 51;
    case EHOSTUNREACH: return 65;
    default: return linuxErrno;
  }
}
}  // namespace

void Connection::startConnect(uint64_t timeoutMs) {
  sndNxt_ = 0;
  sendControl(kSyn);
  sndNxt_ = 1;
  std::weak_ptr<Connection> weak = weak_from_this();
  timer_ = loop_.addTimer(timeoutMs, [weak] {
    if (auto c = weak.lock()) {
      c->timer_ = 0;
      c->connectTimedOut();
    }
  });
}

void Connection::connectTimedOut() {
  if (state_ != State::SynSent) return;
  sendControl(kRst);
  closeFromHandshake("ETIMEDOUT", "the device did not answer the SYN in time");
}

void Connection::closeFromHandshake(const char* code, const std::string& reason) {
  cancelTimer();
  state_ = State::Closed;
  if (io_) io_->abort();
  std::shared_ptr<Connection> self = shared_from_this();
  if (session_) session_->remove(*this);
  observer_.onConnectFailed(*this, code, reason);
}

void Connection::acceptSyn(const TcpHeader& syn) {
  rcvNxt_ = syn.seq + 1;
  sndWnd_ = unscaleWindow(syn.window);
  sndNxt_ = 0;
  sndUna_ = 0;
}

void Connection::localConnected() {
  if (state_ != State::SynReceived) return;
  sendControl(kSyn | kAck);
  sndNxt_ = 1;
  state_ = State::SynAckSent;
  if (session_) {
    session_->controlLog(kControlInfo, "AppleUSBDeviceMux::handleConnectResult new session " +
                                           hexText(id_) + " established " +
                                           std::to_string(localPort_) + "<-lo0->" +
                                           std::to_string(localPort_) + " " +
                                           std::to_string(localPort_) + "<-usb->" +
                                           std::to_string(remotePort_));
  }
}

void Connection::localConnectFailed(int error) {
  if (state_ != State::SynReceived) return;
  sendControl(kRst);
  if (session_) {
    session_->controlLog(kControlWarning, "AppleUSBDeviceMux::handleConnectResult new session to port " +
                                              std::to_string(localPort_) + " failed: " +
                                              std::to_string(darwinErrno(error)));
  }
  closeFromHandshake("ECONNREFUSED", std::string("local connect failed: ") + strerror(error));
}

}  // namespace tsmuxd::mux
