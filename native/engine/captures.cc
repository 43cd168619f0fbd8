// Engine: captures (docs/capture.md). The tap is the engine's; the loop
// points at it only while a capture runs, so without one the data path's
// cost is one null test per mux packet and per tunnel packet.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine/engine.h"

namespace tsmuxd::engine {

namespace {
// Captures running at once (each has a ring and a thread).
constexpr size_t kMaxCaptures = 4;
}  // namespace

uint32_t Engine::startCapture(int fd, core::CaptureFilter filter, size_t ringBytes, std::string application,
                              std::string& error) {
  int out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (out < 0) {
    error = std::string("cannot duplicate the capture's descriptor: ") + std::strerror(errno);
    return 0;
  }
  int flags = fcntl(out, F_GETFL);
  if (flags >= 0) fcntl(out, F_SETFL, flags | O_NONBLOCK);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    ::close(out);
    return 0;
  }
  uint32_t id = nextCapture_++;
  auto sink = std::make_shared<core::CaptureSink>(id, ringBytes, std::move(filter), wake);
  // The writer owns both fds from here; its destructor closes them.
  auto writer = std::make_shared<CaptureWriter>(
      sink, out, wake, std::move(application),
      [this, id](const std::string& reason, bool) { loop_.post([this, id, reason] { endCapture(id, reason); }); },
      [this, id](const CaptureSummary& summary) { loop_.post([this, id, summary] { captureDone(id, summary); }); });
  loop_.post([this, id, sink, writer] {
    if (captures_.size() >= kMaxCaptures) {
      NativeEvent ev(NativeEvent::Type::CaptureEnded);
      ev.capture = id;
      ev.code = "EBUSY";
      ev.text = std::to_string(kMaxCaptures) + " captures are running already";
      emit(std::move(ev));
      return;
    }
    captures_[id] = writer;
    captureTap_.add(sink);
    loop_.setCaptureTap(&captureTap_);
    writer->start();
  });
  return id;
}

void Engine::stopCapture(uint32_t id, std::string reason) {
  loop_.post([this, id, reason] { endCapture(id, reason); });
}

void Engine::endCapture(uint32_t id, const std::string& reason) {
  auto it = captures_.find(id);
  if (it == captures_.end()) return;
  captureTap_.remove(id);
  if (captureTap_.empty()) loop_.setCaptureTap(nullptr);
  it->second->finish(reason);
}

void Engine::captureDone(uint32_t id, const CaptureSummary& summary) {
  auto it = captures_.find(id);
  if (it == captures_.end()) return;
  std::shared_ptr<CaptureWriter> writer = std::move(it->second);
  captures_.erase(it);
  // A writer that ended by itself may still be in the tap.
  captureTap_.remove(id);
  if (captureTap_.empty()) loop_.setCaptureTap(nullptr);
  writer->join();  // its thread has called us as its last act
  NativeEvent ev(NativeEvent::Type::CaptureEnded);
  ev.capture = id;
  ev.text = summary.reason;
  ev.code = summary.failed ? "EIO" : "";
  ev.packets = summary.packets;
  ev.bytesOut = summary.bytes;
  ev.dropped = summary.dropped;
  emit(std::move(ev));
}

void Engine::addCaptureDevice(uint32_t id, uint32_t handle) {
  loop_.post([this, id, handle] { captureTap_.allow(id, handle); });
}

void Engine::captureLabel(uint32_t handle, std::string text) {
  loop_.post([this, handle, text = std::move(text)]() mutable { captureTap_.label(handle, std::move(text)); });
}

void Engine::captureSecret(std::string line) {
  if (!captureTap_.running()) return;
  captureTap_.postSecret(std::move(line));
  // Taken before the next packet anyway; this is for a session that sends nothing more.
  loop_.post([this] { captureTap_.takePostedSecrets(); });
}

// Loop thread, the engine stopping: nothing more is written.
void Engine::stopAllCaptures() {
  for (auto& c : captures_) {
    captureTap_.remove(c.first);
    c.second->abandon("the daemon is stopping");
  }
  loop_.setCaptureTap(nullptr);
}

}  // namespace tsmuxd::engine
