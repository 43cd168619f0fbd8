#pragma once
// A FunctionFS function as the simulated phone holds it: ep0, where the
// descriptors go in and the gadget's lifecycle events come out, and the two
// bulk endpoint files. It outlives mux sessions: each ENABLE (the host chose a
// configuration with our interface) starts one, each DISABLE or UNBIND (the
// host unconfigured us, or the UDC was unbound: an unplug) ends it.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/event_loop.h"
#include "usb/ffs_descriptors.h"

namespace tsmuxd::usb {

class FfsFunction : public core::Pollable {
 public:
  // Setup: a control request reached us and was stalled (informational).
  enum class Event { Bind, Unbind, Enable, Disable, Suspend, Resume, Setup };
  // `detail` is a log line's worth of text about the event.
  using Listener = std::function<void(Event, const std::string& detail)>;

  // Opens <dir>/ep0 of a mounted functionfs, writes descriptors and strings
  // (after which the kernel creates the endpoint files) and opens those. Runs
  // on the caller's thread so the caller hears about a bad mount at once.
  // `openEndpoints`: the mux function's bulk OUT (ep1) and IN (ep2) files, for
  // sessions; a placeholder interface (a phone's PTP, say) opens none.
  static std::unique_ptr<FfsFunction> open(const std::string& dir, const FfsInterfaceSpec& spec,
                                           bool openEndpoints, std::string& error);
  ~FfsFunction() override;

  // Event thread from here on. False (function closed) if ep0 cannot be watched.
  bool start(core::EventLoop& loop, Listener listener, std::string& error);
  void close();
  void onPoll(uint32_t events) override;

  int outFd() const { return outFd_; }
  int inFd() const { return inFd_; }
  // wMaxPacketSize of the OUT endpoint at the speed the host enumerated us
  // at; `fallback` when the kernel cannot say (the endpoint is not enabled).
  uint16_t currentMaxPacketSize(uint16_t fallback) const;

 private:
  FfsFunction(int ep0, int out, int in) : ep0_(ep0), outFd_(out), inFd_(in) {}
  void readEvents();
  void stallSetup(const uint8_t* setup);

  core::EventLoop* loop_ = nullptr;
  Listener listener_;
  int ep0_;
  int outFd_;
  int inFd_;
};

const char* ffsEventName(FfsFunction::Event e);

}  // namespace tsmuxd::usb
