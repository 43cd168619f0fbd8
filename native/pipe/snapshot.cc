// Engine::snapshot: the JS thread posts a collection to the event thread and
// waits for it. A turn is short (bounded epoll batch and deferred rounds), so
// the wait is too; the event thread never waits for JS, so it cannot deadlock.
#include <chrono>
#include <future>

#include "pipe/engine.h"

namespace tsmuxd::pipe {

namespace {
const char* sessionStateName(const mux::DeviceSession* s) {
  if (!s) return "attached";  // described, not opened by the control plane yet
  switch (s->state()) {
    case mux::DeviceSession::State::Init:
    case mux::DeviceSession::State::AwaitSetup: return "handshake";
    case mux::DeviceSession::State::Active: return "active";
    case mux::DeviceSession::State::Dead: return "dead";
  }
  return "unknown";
}
}  // namespace

bool Engine::snapshot(EngineSnapshot& out, uint64_t timeoutMs) {
  if (!started_) return false;
  // Shared, so a collection that finishes after we gave up writes into live memory.
  auto result = std::make_shared<std::promise<EngineSnapshot>>();
  std::future<EngineSnapshot> ready = result->get_future();
  loop_.post([this, result] { result->set_value(collectSnapshot()); });
  if (ready.wait_for(std::chrono::milliseconds(timeoutMs)) != std::future_status::ready) return false;
  out = ready.get();
  return true;
}

EngineSnapshot Engine::collectSnapshot() {
  EngineSnapshot snap;
  uint64_t now = EventLoop::nowUs();
  snap.timeMs = double(now) / 1000.0;
  snap.devices.reserve(links_.size());
  for (auto& entry : links_) {
    DeviceLink& link = *entry.second;
    DeviceSnapshot d;
    d.handle = link.handle();
    d.role = link.role() == mux::Role::Host ? "host" : "device";
    mux::DeviceSession* session = link.session();
    d.state = sessionStateName(session);
    d.queuedOut = link.transport().queuedBytes();
    d.congested = link.transport().congested();
    if (session) {
      const mux::DeviceSession::Traffic& t = session->traffic();
      d.version = session->version();
      d.bytesToDevice = t.toDevice;
      d.bytesFromDevice = t.fromDevice;
      d.usbBytesOut = t.usbOut;
      d.usbBytesIn = t.usbIn;
      d.connections = uint32_t(session->connectionCount());
      d.connectionsTotal = t.connectionsTotal;
    }
    snap.devices.push_back(d);
  }
  snap.connections.reserve(conns_.size());
  for (auto& entry : conns_) {
    ConnectionSnapshot c;
    entry.second->snapshot(c, now);
    snap.connections.push_back(c);
  }
  return snap;
}

}  // namespace tsmuxd::pipe
