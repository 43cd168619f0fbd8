// Engine::requestSnapshot: the JS thread posts a collection to the event
// thread, which answers with a Snapshot event in the same batch as its other
// events. Neither thread waits for the other: a stats request from any local
// client can never block the JS thread.
#include "engine/engine.h"

namespace tsmuxd::engine {

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

bool Engine::requestSnapshot(uint32_t requestId) {
  if (!started_) return false;
  loop_.post([this, requestId] {
    NativeEvent ev(NativeEvent::Type::Snapshot);
    ev.requestId = requestId;
    ev.snapshot = std::make_shared<EngineSnapshot>(collectSnapshot());
    emit(std::move(ev));
  });
  return true;
}

EngineSnapshot Engine::collectSnapshot() {
  EngineSnapshot snap;
  uint64_t now = core::EventLoop::nowUs();
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
    mux::ConnectionSnapshot c;
    entry.second->snapshot(c, now);
    snap.connections.push_back(c);
  }
  return snap;
}

}  // namespace tsmuxd::engine
