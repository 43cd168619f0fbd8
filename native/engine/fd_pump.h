#pragma once
// Moves bytes between a local socket and its mux connection, on the event
// thread, without ever crossing into JS. In the daemon the socket is a
// client's, handed over after Connect; in the simulated phone it is the
// service's. Backpressure is the connection's: we read only while the peer's
// window has room, and what the socket will not take stays unACKed.
#include <cstdint>
#include <string>
#include <vector>

#include "mux/connection.h"
#include "core/event_loop.h"

namespace tsmuxd::engine {

// The most greeting bytes a pump takes: a usbmuxd Result is a few hundred.
constexpr size_t kMaxGreetingBytes = 4096;

class FdPump : public mux::ConnectionIo, public core::Pollable, public core::Deferred {
 public:
  // `connecting`: the socket is an outgoing non-blocking connect in progress.
  FdPump(core::EventLoop& loop, int fd, bool connecting);
  ~FdPump() override;

  void bind(mux::Connection* conn) { conn_ = conn; }
  // Bytes the client sent after its Connect request, before the handover;
  // they go to the peer ahead of anything read from the socket.
  void setPipelined(std::vector<uint8_t> bytes) { pipelined_ = std::move(bytes); }
  // Bytes for the local socket ahead of anything from the peer (the
  // usbmuxd Result of a Connect), written at once as far as the socket takes
  // them; nothing else is written until they are all out.
  void greet(std::vector<uint8_t> bytes);
  // An outgoing connect finished at once (0) or failed at once (errno).
  void connectDone(int error);

  size_t offer(const struct iovec* iov, int count) override;
  void inboundReady() override;
  void sendReady() override;
  void finish() override;
  void abort() override;
  bool outputWaiting() override;

  void onPoll(uint32_t events) override;
  void runDeferred() override;

 private:
  void pumpOut();
  void pumpIn();
  void discardInput();
  void closeFd();
  void localFailed(const std::string& reason);
  size_t sendPipelined(size_t room);
  // False while greeting bytes are still unwritten (or the write failed).
  bool flushGreeting();

  core::EventLoop& loop_;
  int fd_;
  mux::Connection* conn_ = nullptr;
  bool connecting_;
  int connectResult_ = -1;  // set by connectDone() until the deferred run
  bool readable_ = false;
  bool writable_ = false;
  bool finishing_ = false;
  // After the peer's last byte: our side is shut for writing and what the
  // local end still sends is read and dropped until it closes.
  bool discarding_ = false;
  bool hungUp_ = false;  // epoll reported RDHUP/HUP: read until EOF
  std::string failure_;  // a local I/O error, reported from runDeferred()
  std::vector<uint8_t> pipelined_;
  size_t pipelinedSent_ = 0;
  std::vector<uint8_t> greeting_;
  size_t greetingSent_ = 0;
};

}  // namespace tsmuxd::engine
