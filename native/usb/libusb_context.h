#pragma once
// The project's own libusb context, driven by the engine's event thread.
//
// Threading: libusb's pollfds (the usbfs fd of every open device, its event
// fd and timerfd) sit in the engine's epoll set, and libusb's completion
// callbacks run on the event thread inside a zero-timeout
// libusb_handle_events_timeout_completed(). We chose this over a dedicated
// libusb event thread that posts batches to the loop because everything a
// transfer touches (transport, session, connections) already belongs to the
// event thread and takes no locks (docs/architecture.md): a callback here is
// bookkeeping plus a Deferred, and one turn's completions reach the session
// together at the end of the turn, as a recvmmsg batch on the cable does. A
// separate thread would add a locked queue, a wakeup per batch and a second
// thread touching every transfer slot. usbmuxd polls libusb's fds in its own
// main loop too; node-usb gave its poll mode up for Windows (no pollfds) and a
// libusb starvation bug fixed in 1.0.24, neither of which applies here.
//
// fds are registered level-triggered: libusb reaps at most 26 URBs per fd per
// call, and whatever it leaves must be reported again next turn.
#include <libusb.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/event_loop.h"

namespace tsmuxd::usb {

class LibusbDevice;

// "LIBUSB_ERROR_ACCESS (Access denied (insufficient permissions))"
std::string libusbErrorText(int code);

class LibusbContext : public core::Pollable {
 public:
  using LogFn = std::function<void(const char* level, const std::string& text)>;

  // How long a closing device may keep cancelled transfers before its handle
  // is closed anyway and the transfers are leaked (usbmuxd busy-waits here
  // forever: its issue #114).
  static constexpr uint64_t kDrainTimeoutMs = 2000;

  // libusb_init on the calling thread; null with `error` set when there is no
  // USB (no usbfs, no permission, ...).
  static std::unique_ptr<LibusbContext> create(core::EventLoop& loop, LogFn log, std::string& error);
  // After the event thread has stopped (shutdown() ran on it): libusb_exit.
  ~LibusbContext() override;
  LibusbContext(const LibusbContext&) = delete;
  LibusbContext& operator=(const LibusbContext&) = delete;

  libusb_context* raw() const { return ctx_; }
  core::EventLoop& loop() { return loop_; }
  void log(const char* level, const std::string& text) const {
    if (log_) log_(level, text);
  }

  // Event thread: puts libusb's fds into the epoll set and follows changes.
  void attach();
  // Event thread: takes a device that is closing. Its transfers are
  // cancelled; it is freed once they have all come back, or closed and
  // leaked after kDrainTimeoutMs. Never frees anything inside a libusb
  // callback.
  void retire(std::unique_ptr<LibusbDevice> device);
  // Event thread, engine stop: waits in poll (bounded by `timeoutMs`) for
  // retired devices, force-closes the rest, and leaves the epoll set.
  void shutdown(uint64_t timeoutMs);

  void onPoll(uint32_t events) override;

 private:
  LibusbContext(core::EventLoop& loop, libusb_context* ctx, LogFn log);
  static void LIBUSB_CALL fdAdded(int fd, short events, void* self);
  static void LIBUSB_CALL fdRemoved(int fd, void* self);
  void watch(int fd, short events);
  void unwatch(int fd);
  void handleEvents();
  // Frees drained devices, force-closes overdue ones, arms the next check.
  void reap();
  void armTimeoutTimer();

  struct Retired {
    std::unique_ptr<LibusbDevice> device;
    uint64_t deadline;
  };

  core::EventLoop& loop_;
  libusb_context* ctx_;
  LogFn log_;
  bool attached_ = false;
  bool timerfdTimeouts_ = true;  // libusb_pollfds_handle_timeouts()
  std::unordered_set<int> fds_;
  std::vector<Retired> retired_;
  core::EventLoop::TimerId reapTimer_ = 0;
  uint64_t reapDue_ = 0;
  core::EventLoop::TimerId libusbTimer_ = 0;
};

}  // namespace tsmuxd::usb
