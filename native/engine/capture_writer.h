#pragma once
// One capture's writer (docs/capture.md): a thread of its own that drains
// the capture's ring into pcapng on a file or a client's socket. It is the
// only thing that may wait on the output: a reader that stops reading stops
// this thread, the ring fills, and the event thread drops and counts, so the
// data path never waits for a capture.
//
// The stop sequence, which keeps the drop counts consistent: the event
// thread takes the sink out of the tap (nothing more is recorded), then
// calls finish(); the writer drains what is left, writes an Interface
// Statistics Block per interface with its drops, and closes the output.
// The writer asks for that sequence itself (onEnd) when its output goes: a
// client that half-closes (the end it asked for), a reader that left, a disk
// that filled (the file is cut back to its last whole block).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/capture_tap.h"

namespace tsmuxd::engine {

struct CaptureSummary {
  uint64_t packets = 0;  // written
  uint64_t bytes = 0;    // of pcapng written
  uint64_t dropped = 0;  // records the full ring refused
  std::string reason;    // why it ended
  bool failed = false;   // the output failed (reason says how)
};

class CaptureWriter {
 public:
  // `onEnd(reason, failed)`: called once on the writer's thread when its
  // output ends by itself; the owner then runs the stop sequence.
  // `onDone(summary)`: called once on the writer's thread as it exits.
  CaptureWriter(std::shared_ptr<core::CaptureSink> sink, int fd, int wakeFd, std::string application,
                std::function<void(const std::string&, bool)> onEnd, std::function<void(const CaptureSummary&)> onDone);
  ~CaptureWriter();
  CaptureWriter(const CaptureWriter&) = delete;
  CaptureWriter& operator=(const CaptureWriter&) = delete;

  void start();
  // After the tap let go of the sink: write what is left and the statistics.
  void finish(const std::string& reason);
  // Stop now, writing nothing more (the engine is stopping).
  void abandon(const std::string& reason);
  void join();

 private:
  struct Interface {
    uint32_t id;
    uint64_t packets = 0;
  };
  void run();
  void drain();
  void encode(const core::CaptureRecord& r, const uint8_t* data);
  uint32_t interfaceFor(core::CaptureInterface kind, uint32_t source, uint32_t device);
  void writeStatistics();
  // Writes out_; false when the output failed or a stop cut it short.
  bool flush(bool final);
  void waitForWork();
  void ended(const std::string& reason, bool failed);
  void signal();

  std::shared_ptr<core::CaptureSink> sink_;
  int fd_;
  int wakeFd_;
  std::string application_;
  std::function<void(const std::string&, bool)> onEnd_;
  std::function<void(const CaptureSummary&)> onDone_;
  std::thread thread_;
  bool isSocket_ = false;
  bool isFile_ = false;
  bool watchOutput_ = false;

  std::atomic<bool> finishing_{false};
  std::atomic<bool> abandoned_{false};
  std::string stopReason_;  // written before finishing_/abandoned_ is set

  // Writer thread only.
  std::vector<uint8_t> out_;
  std::map<uint64_t, Interface> interfaces_;
  std::unordered_map<uint32_t, std::string> labels_;
  uint32_t nextInterface_ = 0;
  uint64_t written_ = 0;
  bool endAsked_ = false;
  CaptureSummary summary_;
};

// pcapng is written in chunks of about this much.
constexpr size_t kCaptureFlushBytes = 256 << 10;
// How long the statistics at the end may wait for a slow reader.
constexpr int kCaptureFinalFlushMs = 2000;

}  // namespace tsmuxd::engine
