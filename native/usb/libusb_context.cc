#include "usb/libusb_context.h"

#include <poll.h>
#include <sys/time.h>

#include <algorithm>

#include "usb/libusb_device.h"

namespace tsmuxd::usb {

std::string libusbErrorText(int code) {
  return std::string(libusb_error_name(code)) + " (" + libusb_strerror(code) + ")";
}

std::unique_ptr<LibusbContext> LibusbContext::create(core::EventLoop& loop, LogFn log,
                                                     std::string& error) {
  libusb_context* ctx = nullptr;
  int r = libusb_init(&ctx);
  if (r != 0) {
    error = "libusb_init failed: " + libusbErrorText(r);
    return nullptr;
  }
  return std::unique_ptr<LibusbContext>(new LibusbContext(loop, ctx, std::move(log)));
}

LibusbContext::LibusbContext(core::EventLoop& loop, libusb_context* ctx, LogFn log)
    : loop_(loop), ctx_(ctx), log_(std::move(log)) {}

LibusbContext::~LibusbContext() {
  // shutdown() ran on the event thread, or attach() never did; either way no
  // device is open any more unless one was leaked, which libusb_exit tolerates.
  libusb_set_pollfd_notifiers(ctx_, nullptr, nullptr, nullptr);
  for (auto& r : retired_) {
    if (r.device->inFlight() == 0) r.device.reset();
    else {
      r.device->forceClose();
      r.device.release();  // see shutdown(): leaked on purpose
    }
  }
  libusb_exit(ctx_);
}

void LibusbContext::attach() {
  if (attached_) return;
  attached_ = true;
  timerfdTimeouts_ = libusb_pollfds_handle_timeouts(ctx_) != 0;
  // Notifiers first, then the current list: libusb calls the notifiers on
  // the thread that opens or closes a device, which is always this one.
  libusb_set_pollfd_notifiers(ctx_, fdAdded, fdRemoved, this);
  const libusb_pollfd** fds = libusb_get_pollfds(ctx_);
  if (fds) {
    for (const libusb_pollfd** p = fds; *p; ++p) watch((*p)->fd, (*p)->events);
    libusb_free_pollfds(fds);
  }
}

void LIBUSB_CALL LibusbContext::fdAdded(int fd, short events, void* self) {
  static_cast<LibusbContext*>(self)->watch(fd, events);
}

void LIBUSB_CALL LibusbContext::fdRemoved(int fd, void* self) {
  static_cast<LibusbContext*>(self)->unwatch(fd);
}

void LibusbContext::watch(int fd, short events) {
  if (!fds_.insert(fd).second) return;
  uint32_t ev = 0;
  if (events & POLLIN) ev |= EPOLLIN;
  if (events & POLLOUT) ev |= EPOLLOUT;  // usbfs reports reapable URBs as POLLOUT
  try {
    loop_.add(fd, this, ev, false);
  } catch (const std::exception& e) {
    fds_.erase(fd);
    log("error", std::string("cannot watch a libusb fd: ") + e.what());
  }
}

void LibusbContext::unwatch(int fd) {
  if (fds_.erase(fd)) loop_.remove(fd);
}

void LibusbContext::onPoll(uint32_t) {
  handleEvents();
  reap();
}

void LibusbContext::handleEvents() {
  struct timeval zero {0, 0};
  int r = libusb_handle_events_timeout_completed(ctx_, &zero, nullptr);
  if (r != 0 && r != LIBUSB_ERROR_INTERRUPTED && r != LIBUSB_ERROR_TIMEOUT) {
    log("warning", "libusb event handling failed: " + libusbErrorText(r));
  }
  if (!timerfdTimeouts_) armTimeoutTimer();
}

void LibusbContext::armTimeoutTimer() {
  // Only where libusb has no timerfd: it then needs a call when its next
  // transfer timeout (our control transfers) falls due.
  if (libusbTimer_) loop_.cancelTimer(libusbTimer_);
  libusbTimer_ = 0;
  struct timeval tv {};
  if (libusb_get_next_timeout(ctx_, &tv) != 1) return;
  uint64_t ms = uint64_t(tv.tv_sec) * 1000 + uint64_t(tv.tv_usec + 999) / 1000;
  libusbTimer_ = loop_.addTimer(ms, [this] {
    libusbTimer_ = 0;
    handleEvents();
    reap();
  });
}

void LibusbContext::retire(std::unique_ptr<LibusbDevice> device) {
  if (!device) return;
  device->setListener(nullptr);
  device->cancelAll();
  retired_.push_back({std::move(device), core::EventLoop::nowMs() + kDrainTimeoutMs});
  // Freed from a timer, never here: retire() may run inside a libusb callback.
  if (reapTimer_) loop_.cancelTimer(reapTimer_);
  reapDue_ = core::EventLoop::nowMs();
  reapTimer_ = loop_.addTimer(0, [this] {
    reapTimer_ = 0;
    reap();
  });
}

void LibusbContext::reap() {
  if (retired_.empty()) return;
  uint64_t now = core::EventLoop::nowMs();
  uint64_t next = UINT64_MAX;
  for (auto it = retired_.begin(); it != retired_.end();) {
    LibusbDevice& d = *it->device;
    if (d.inFlight() == 0) {
      it = retired_.erase(it);  // releases the interface, closes the handle
      continue;
    }
    if (now >= it->deadline) {
      log("warning", "USB device at bus " + std::to_string(d.bus()) + " address " +
                         std::to_string(d.address()) + ": " + std::to_string(d.inFlight()) +
                         " cancelled transfer(s) did not come back within " +
                         std::to_string(kDrainTimeoutMs) +
                         " ms; closing the handle and leaking them rather than waiting");
      d.forceClose();
      it->device.release();  // leaked on purpose: libusb may still name these transfers
      it = retired_.erase(it);
      continue;
    }
    next = std::min(next, it->deadline);
    ++it;
  }
  if (next == UINT64_MAX) return;
  // Keep one timer at the earliest deadline, so an overdue device is closed
  // even when libusb never reports anything again.
  if (reapTimer_ && reapDue_ <= next) return;
  if (reapTimer_) loop_.cancelTimer(reapTimer_);
  reapDue_ = next;
  reapTimer_ = loop_.addTimer(next > now ? next - now : 0, [this] {
    reapTimer_ = 0;
    reap();
  });
}

void LibusbContext::shutdown(uint64_t timeoutMs) {
  uint64_t deadline = core::EventLoop::nowMs() + timeoutMs;
  for (auto& r : retired_) r.deadline = std::min(r.deadline, deadline);
  // Blocking in poll() here is fine: the loop is stopping and nothing else
  // runs on it. Each round waits at most 50 ms for libusb to say something.
  while (!retired_.empty()) {
    uint64_t now = core::EventLoop::nowMs();
    if (now >= deadline) break;
    uint64_t wait = std::min<uint64_t>(deadline - now, 50);
    struct timeval tv {long(wait / 1000), long((wait % 1000) * 1000)};
    libusb_handle_events_timeout_completed(ctx_, &tv, nullptr);
    reap();
  }
  for (auto& r : retired_) r.deadline = 0;
  reap();  // force-closes what is left
  if (reapTimer_) loop_.cancelTimer(reapTimer_);
  if (libusbTimer_) loop_.cancelTimer(libusbTimer_);
  reapTimer_ = libusbTimer_ = 0;
  libusb_set_pollfd_notifiers(ctx_, nullptr, nullptr, nullptr);
  for (int fd : fds_) loop_.remove(fd);
  fds_.clear();
  closed_ = true;
}

}  // namespace tsmuxd::usb
