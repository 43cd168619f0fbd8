// The engine's events as JS sees them (the NativeEvent union of
// src/native.ts): built on the JS thread, one batch per loop turn.
#include "addon.h"
#include "engine/events.h"

namespace tsmuxd::addon {

namespace {

const char* eventTypeName(engine::NativeEvent::Type t) {
  using T = engine::NativeEvent::Type;
  switch (t) {
    case T::Attached: return "attached";
    case T::Ready: return "ready";
    case T::Detached: return "detached";
    case T::Log: return "log";
    case T::Connected: return "connected";
    case T::ConnectFailed: return "connectFailed";
    case T::Closed: return "closed";
    case T::Snapshot: return "snapshot";
    case T::TunnelHandshake: return "tunnelHandshake";
    case T::TunnelClosed: return "tunnelClosed";
    case T::ClientArrived: return "clientArrived";
    case T::CaptureEnded: return "captureEnded";
    case T::RemoteReply: return "remoteReply";
    case T::RemoteSecure: return "remoteSecure";
  }
  return "unknown";
}

}  // namespace

static Napi::Object snapshotToJs(Napi::Env env, const engine::EngineSnapshot& snap);

Napi::Value eventToJs(Napi::Env env, const engine::NativeEvent& ev) {
  using T = engine::NativeEvent::Type;
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", eventTypeName(ev.type));
  if (ev.handle) o.Set("handle", ev.handle);
  if (ev.conn) o.Set("conn", ev.conn);
  switch (ev.type) {
    case T::Attached:
      if (ev.descriptor) o.Set("descriptor", descriptorToJs(env, *ev.descriptor));
      o.Set("link", ev.link);
      if (ev.locationId) o.Set("locationId", ev.locationId);
      break;
    case T::Ready: o.Set("version", ev.version); break;
    case T::Log:
      o.Set("level", ev.level);
      o.Set("text", ev.text);
      break;
    case T::Closed:
      o.Set("reason", ev.text);
      o.Set("bytesIn", double(ev.bytesIn));
      o.Set("bytesOut", double(ev.bytesOut));
      break;
    case T::Detached:
    case T::ConnectFailed:
      o.Set("code", ev.code);
      o.Set("reason", ev.text);
      if (ev.fd >= 0) o.Set("fd", ev.fd);  // a client connectClient took, given back
      break;
    case T::Connected: break;
    case T::ClientArrived:
      o.Set("fd", ev.fd);
      if (ev.hasCredentials) {
        Napi::Object peer = Napi::Object::New(env);
        peer.Set("pid", ev.pid);
        peer.Set("uid", ev.uid);
        peer.Set("gid", ev.gid);
        o.Set("peer", peer);
      }
      o.Set("complete", ev.complete);
      o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, ev.bytes.data(), ev.bytes.size()));
      o.Set("why", ev.text);
      break;
    case T::TunnelHandshake:
      o.Set("tunnel", ev.tunnel);
      o.Set("role", ev.role);
      o.Set("body", ev.text);
      break;
    case T::TunnelClosed:
      o.Set("tunnel", ev.tunnel);
      o.Set("code", ev.code);
      o.Set("reason", ev.text);
      break;
    case T::CaptureEnded:
      o.Set("capture", ev.capture);
      o.Set("code", ev.code);
      o.Set("reason", ev.text);
      o.Set("packets", double(ev.packets));
      o.Set("bytes", double(ev.bytesOut));
      o.Set("dropped", double(ev.dropped));
      break;
    case T::RemoteReply: o.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, ev.bytes.data(), ev.bytes.size())); break;
    case T::RemoteSecure: o.Set("text", ev.text); break;
    case T::Snapshot:
      o.Set("requestId", ev.requestId);
      if (ev.snapshot) o.Set("snapshot", snapshotToJs(env, *ev.snapshot));
      break;
  }
  return o;
}

static Napi::Object snapshotToJs(Napi::Env env, const engine::EngineSnapshot& snap) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("timeMs", snap.timeMs);
  Napi::Array devices = Napi::Array::New(env, snap.devices.size());
  for (size_t i = 0; i < snap.devices.size(); ++i) {
    const engine::DeviceSnapshot& d = snap.devices[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("handle", d.handle);
    e.Set("role", d.role);
    e.Set("state", d.state);
    e.Set("version", d.version);
    e.Set("bytesToDevice", double(d.bytesToDevice));
    e.Set("bytesFromDevice", double(d.bytesFromDevice));
    e.Set("usbBytesOut", double(d.usbBytesOut));
    e.Set("usbBytesIn", double(d.usbBytesIn));
    e.Set("connections", d.connections);
    e.Set("connectionsTotal", double(d.connectionsTotal));
    e.Set("queuedOut", double(d.queuedOut));
    e.Set("congested", d.congested);
    devices.Set(uint32_t(i), e);
  }
  o.Set("devices", devices);
  Napi::Array conns = Napi::Array::New(env, snap.connections.size());
  for (size_t i = 0; i < snap.connections.size(); ++i) {
    const mux::ConnectionSnapshot& c = snap.connections[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("conn", c.conn);
    e.Set("handle", c.handle);
    e.Set("role", c.role);
    e.Set("state", c.state);
    e.Set("devicePort", c.devicePort);
    e.Set("sourcePort", c.sourcePort);
    e.Set("bytesToDevice", double(c.bytesToDevice));
    e.Set("bytesFromDevice", double(c.bytesFromDevice));
    e.Set("sendWindow", c.sendWindow);
    e.Set("receiveWindow", c.receiveWindow);
    e.Set("inFlight", c.inFlight);
    e.Set("queued", double(c.queued));
    e.Set("stalls", double(c.stalls));
    if (c.rttSamples) e.Set("rttMs", c.rttMs);
    e.Set("rttSamples", c.rttSamples);
    e.Set("ageMs", c.ageMs);
    conns.Set(uint32_t(i), e);
  }
  o.Set("connections", conns);
  return o;
}

}  // namespace tsmuxd::addon
