#include "testing/raw_bulk_device.h"

#include "usb/ffs.h"

namespace tsmuxd::testing {

std::unique_ptr<RawBulkDevice> RawBulkDevice::open(const std::string& dir, Logger log,
                                                   std::string& error) {
  std::unique_ptr<usb::FfsFunction> function =
      usb::FfsFunction::open(dir, usb::FfsInterfaceSpec(), true, error);
  if (!function) return nullptr;
  std::unique_ptr<RawBulkDevice> device(new RawBulkDevice(std::move(function), std::move(log)));
  return device;
}

RawBulkDevice::RawBulkDevice(std::unique_ptr<usb::FfsFunction> function, Logger log)
    : log_(std::move(log)) {
  usb::FfsFunction* f = function.release();
  function_ = std::shared_ptr<usb::FfsFunction>(f);
  loop_.start("tsmuxd-raw");
  loop_.post([this] {
    std::string why;
    if (!function_->start(loop_, [this](usb::FfsFunction::Event e, const std::string& d) { onEvent(e, d); }, why)) {
      log_("error", "FunctionFS: cannot watch ep0: " + why);
    }
  });
}

RawBulkDevice::~RawBulkDevice() { close(); }

void RawBulkDevice::close() {
  if (closed_) return;
  closed_ = true;
  loop_.stop([this] {
    raw_.reset();  // its transport cancels requests on the function's files
    function_->close();
  });
}

void RawBulkDevice::onEvent(usb::FfsFunction::Event e, const std::string& detail) {
  using E = usb::FfsFunction::Event;
  switch (e) {
    case E::Enable: {
      // Inside FfsFunction::onPoll: the old RawBulk (and its transport, whose
      // events may still be in this epoll batch) is retired, not freed.
      raw_.reset();
      uint16_t mps = function_->currentMaxPacketSize(512);
      std::string error;
      auto transport = usb::FfsTransport::create(loop_, pool_, stats_, function_->outFd(),
                                                 function_->inFd(), mps, error);
      if (!transport) {
        log_("error", "FunctionFS ENABLE: cannot start the raw device: " + error);
        return;
      }
      log_("info", "FunctionFS ENABLE: wMaxPacketSize " + std::to_string(mps));
      raw_ = loop_.makeRetiring<RawBulk>(std::move(transport), pool_, log_);
      return;
    }
    case E::Disable:
    case E::Unbind:
      log_("info", "FunctionFS " + detail);
      raw_.reset();
      return;
    case E::Setup: log_("debug", "FunctionFS " + detail); return;
    default: log_("info", "FunctionFS " + detail); return;
  }
}

}  // namespace tsmuxd::testing
