#pragma once
// The lab's raw bulk device on a mounted FunctionFS (`tsmuxd sim --ffs DIR
// --raw`): the mux function's descriptors on ep0, and one RawBulk per ENABLE
// on the same FunctionFS transport, buffers and kind of event thread as the
// daemon's sim, but with its own loop, since it lives in the testing addon.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/buffers.h"
#include "core/event_loop.h"
#include "core/stats.h"
#include "testing/raw_bulk.h"
#include "usb/ffs_function.h"

namespace tsmuxd::testing {

class RawBulkDevice {
 public:
  // level, text; called on the device's event thread.
  using Logger = std::function<void(const char*, std::string)>;

  // Writes the descriptors now (the caller hears about a bad mount at once),
  // then serves on a thread of its own until close().
  static std::unique_ptr<RawBulkDevice> open(const std::string& dir, Logger log, std::string& error);
  ~RawBulkDevice();
  void close();
  EngineStats& stats() { return stats_; }

 private:
  RawBulkDevice(std::unique_ptr<usb::FfsFunction> function, Logger log);
  void onEvent(usb::FfsFunction::Event e, const std::string& detail);

  Logger log_;
  EngineStats stats_;
  core::EventLoop loop_;
  core::BufferPool pool_;
  // Event thread. Both are dropped from inside the function's ep0 callback
  // (a re-ENABLE, a DISABLE): made with makeRetiring, so the RawBulk and its
  // transport are closed at once and freed only after that turn.
  std::shared_ptr<usb::FfsFunction> function_;
  std::shared_ptr<RawBulk> raw_;
  bool closed_ = false;
};

}  // namespace tsmuxd::testing
