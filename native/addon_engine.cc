// The Engine class as JS sees it: a thin shell over engine::Engine. Arguments
// are checked here; the logic lives in the engine and in src/devices.
#include <functional>
#include <memory>

#include "addon.h"
#include "core/fault.h"
#include "engine/engine.h"
#include "engine/fd_pump.h"
#include "engine/js_events.h"
#include "sim/measuring_service.h"
#include "sim/test_service.h"

namespace tsmuxd::addon {

namespace {

std::optional<sim::TestServiceKind> testServiceKind(const std::string& name) {
  if (name == "echo") return sim::TestServiceKind::Echo;
  if (name == "sink") return sim::TestServiceKind::Sink;
  if (name == "source") return sim::TestServiceKind::Source;
  return std::nullopt;
}

// {path} | {host?, targetPort} | {builtin} -> where a device port's connections go.
engine::LocalTarget localTargetFromJs(const Napi::Object& o) {
  engine::LocalTarget t;
  if (o.Get("builtin").IsString()) {
    std::string name = o.Get("builtin").As<Napi::String>().Utf8Value();
    std::optional<sim::TestServiceKind> kind = testServiceKind(name);
    if (!kind) throwError(o.Env(), codes::kInvalidArgument, "builtin must be 'echo', 'sink' or 'source', not '" + name + "'");
    t.service = std::make_shared<sim::MeasuringService>(*kind);
  }
  if (o.Get("path").IsString()) t.path = o.Get("path").As<Napi::String>().Utf8Value();
  if (o.Get("host").IsString()) t.host = o.Get("host").As<Napi::String>().Utf8Value();
  if (o.Get("targetPort").IsNumber()) t.port = uint16_t(o.Get("targetPort").As<Napi::Number>().Uint32Value());
  if (o.Get("once").IsBoolean()) t.once = o.Get("once").ToBoolean();
  if (t.path.empty() && t.host.empty()) t.host = "127.0.0.1";
  return t;
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(
        env, "Engine",
        {
            InstanceMethod<&EngineWrap::listenCable>("listenCable"),
            InstanceMethod<&EngineWrap::closeListener>("closeListener"),
            InstanceMethod<&EngineWrap::openDevice>("openDevice"),
            InstanceMethod<&EngineWrap::closeDevice>("closeDevice"),
            InstanceMethod<&EngineWrap::startUsb>("startUsb"),
            InstanceMethod<&EngineWrap::openUsb>("openUsb"),
            InstanceMethod<&EngineWrap::connect>("connect"),
            InstanceMethod<&EngineWrap::connectClient>("connectClient"),
            InstanceMethod<&EngineWrap::openClientDoor>("openClientDoor"),
            InstanceMethod<&EngineWrap::closeClientDoor>("closeClientDoor"),
            InstanceMethod<&EngineWrap::attachClient>("attachClient"),
            InstanceMethod<&EngineWrap::closeConnection>("closeConnection"),
            InstanceMethod<&EngineWrap::spliceSockets>("spliceSockets"),
            InstanceMethod<&EngineWrap::dialRemote>("dialRemote"),
            InstanceMethod<&EngineWrap::attachDialled>("attachDialled"),
            InstanceMethod<&EngineWrap::serveRemote>("serveRemote"),
            InstanceMethod<&EngineWrap::spliceFarGone>("spliceFarGone"),
            InstanceMethod<&EngineWrap::attachDeviceRole>("attachDeviceRole"),
            InstanceMethod<&EngineWrap::mapDevicePort>("mapDevicePort"),
            InstanceMethod<&EngineWrap::attachDeviceRoleFfs>("attachDeviceRoleFfs"),
            InstanceMethod<&EngineWrap::attachFfsPlaceholder>("attachFfsPlaceholder"),
            InstanceMethod<&EngineWrap::startTestService>("startTestService"),
            InstanceMethod<&EngineWrap::startTunnel>("startTunnel"),
            InstanceMethod<&EngineWrap::configureTunnel>("configureTunnel"),
            InstanceMethod<&EngineWrap::tunnelConnect>("tunnelConnect"),
            InstanceMethod<&EngineWrap::attachTunnelClient>("attachTunnelClient"),
            InstanceMethod<&EngineWrap::listenTunnelPreamble>("listenTunnelPreamble"),
            InstanceMethod<&EngineWrap::openTunnelInterface>("openTunnelInterface"),
            InstanceMethod<&EngineWrap::closeTunnel>("closeTunnel"),
            InstanceMethod<&EngineWrap::startCapture>("startCapture"),
            InstanceMethod<&EngineWrap::stopCapture>("stopCapture"),
            InstanceMethod<&EngineWrap::addCaptureDevice>("addCaptureDevice"),
            InstanceMethod<&EngineWrap::captureLabel>("captureLabel"),
            InstanceMethod<&EngineWrap::captureSecret>("captureSecret"),
            InstanceMethod<&EngineWrap::captureRunning>("captureRunning"),
            InstanceMethod<&EngineWrap::stats>("stats"),
            InstanceMethod<&EngineWrap::requestSnapshot>("requestSnapshot"),
            InstanceMethod<&EngineWrap::ref>("ref"),
            InstanceMethod<&EngineWrap::unref>("unref"),
            InstanceMethod<&EngineWrap::close>("close"),
        });
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throwError(env, codes::kInvalidArgument, "new Engine(onEvents) needs a callback");
    }
    events_ = engine::JsEventQueue::create(env, info[0].As<Napi::Function>(), eventToJs);
    engine_ = std::make_unique<engine::Engine>(*events_);
    events_->bind(&engine_->loop(), &engine_->stats());
    engine_->start();
    // Stop the event thread before the environment goes away (process exit,
    // worker termination), or it would call into a dead environment.
    cleanup_ = env.AddCleanupHook(std::function<void()>([this] {
      hookRan_ = true;  // the hook frees itself; Remove() would touch freed memory
      shutdown();
    }));
  }

  ~EngineWrap() override {
    shutdown();
    if (!hookRan_ && !cleanup_.IsEmpty()) cleanup_.Remove(Env());
  }

 private:
  void shutdown() {
    if (!engine_) return;
    engine_->stop();
    events_->close(Env());
    engine_.reset();
  }

  engine::Engine& live(Napi::Env env) {
    if (!engine_) throwError(env, codes::kEngineClosed, "the engine is closed");
    return *engine_;
  }

  Napi::Value listenCable(const Napi::CallbackInfo& info) {
    std::string path = argString(info, 0, "path");
    std::string error;
    uint32_t id = live(info.Env()).listenCable(path, error);
    if (!id) throwError(info.Env(), codes::kSystem, error);
    return Napi::Number::New(info.Env(), id);
  }

  Napi::Value closeListener(const Napi::CallbackInfo& info) {
    live(info.Env()).closeListener(argUint(info, 0, "listener", UINT32_MAX));
    return info.Env().Undefined();
  }

  Napi::Value openDevice(const Napi::CallbackInfo& info) {
    uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
    Napi::Object opts = argObject(info, 1, "options");
    Napi::Value w = opts.Get("window");
    Napi::Value m = opts.Get("maxPacketSize");
    Napi::Value z = opts.Get("zeroWindowTimeoutMs");
    uint64_t zeroWindowMs = z.IsNumber() ? uint64_t(z.As<Napi::Number>().Int64Value()) : mux::kZeroWindowTimeoutMs;
    uint32_t window = w.IsNumber() ? w.As<Napi::Number>().Uint32Value() : (256u << 10);
    uint32_t maxPacket = m.IsNumber() ? m.As<Napi::Number>().Uint32Value() : 512;
    if (window < 256 || window > mux::kMaxWindow) {
      throwError(info.Env(), codes::kInvalidArgument, "window must be 256 .. 16776960 bytes");
    }
    if (maxPacket < 8 || maxPacket > 1024) {
      throwError(info.Env(), codes::kInvalidArgument, "maxPacketSize must be 8 .. 1024");
    }
    if (z.IsNumber() && z.As<Napi::Number>().DoubleValue() < 0) {
      throwError(info.Env(), codes::kInvalidArgument, "zeroWindowTimeoutMs must be 0 (off) or more");
    }
    live(info.Env()).openDevice(handle, window, uint16_t(maxPacket), zeroWindowMs);
    return info.Env().Undefined();
  }

  Napi::Value closeDevice(const Napi::CallbackInfo& info) {
    uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
    bool unplugged = info.Length() > 1 && info[1].IsBoolean() && info[1].ToBoolean();
    live(info.Env()).closeDevice(handle, unplugged);
    return info.Env().Undefined();
  }

  Napi::Value startUsb(const Napi::CallbackInfo& info) {
    std::string error;
    if (!live(info.Env()).startUsb(error)) throwError(info.Env(), codes::kUsbUnavailable, error);
    return info.Env().Undefined();
  }

  // openUsb({busNumber, deviceAddress, vendorId, productId, configuration,
  //          interfaceNumber, endpointIn, endpointOut, maxPacketSize}) -> handle
  Napi::Value openUsb(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = argObject(info, 0, "request");
    auto field = [&](const char* key, uint32_t min, uint32_t max) -> uint32_t {
      Napi::Value v = o.Get(key);
      double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= min && d <= max) || d != double(uint64_t(d))) {
        throwError(env, codes::kInvalidArgument,
                   std::string("request.") + key + " must be an integer from " +
                       std::to_string(min) + " to " + std::to_string(max));
      }
      return uint32_t(d);
    };
    usb::UsbOpenRequest r;
    r.bus = uint8_t(field("busNumber", 1, 255));
    r.address = uint8_t(field("deviceAddress", 1, 127));
    r.vendorId = uint16_t(field("vendorId", 0, 0xffff));
    r.productId = uint16_t(field("productId", 0, 0xffff));
    r.endpoints.configuration = uint8_t(field("configuration", 1, 255));
    r.endpoints.interfaceNumber = uint8_t(field("interfaceNumber", 0, 255));
    r.endpoints.in = uint8_t(field("endpointIn", 0x81, 0x8f));
    r.endpoints.out = uint8_t(field("endpointOut", 0x01, 0x0f));
    r.endpoints.maxPacketSize = uint16_t(field("maxPacketSize", 8, 1024));
    if (!usb::isAppleMuxDevice(r.vendorId, r.productId)) {
      throwError(env, codes::kInvalidArgument, "openUsb only opens Apple usbmux devices");
    }
    return Napi::Number::New(env, live(env).openUsb(r));
  }

  Napi::Value connect(const Napi::CallbackInfo& info) {
    uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
    uint32_t port = argUint(info, 1, "port", 65535);
    uint32_t timeout = argUint(info, 2, "timeoutMs", 3600000);
    if (port == 0) throwError(info.Env(), codes::kInvalidArgument, "port 0 does not exist");
    return Napi::Number::New(info.Env(), live(info.Env()).connect(handle, uint16_t(port), timeout));
  }

  // connectClient(handle, port, timeoutMs, fd, pipelined?, greeting, takeFd?) -> conn
  Napi::Value connectClient(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
    uint32_t port = argUint(info, 1, "port", 65535);
    uint32_t timeout = argUint(info, 2, "timeoutMs", 3600000);
    uint32_t fd = argUint(info, 3, "fd", INT32_MAX);
    if (port == 0) throwError(env, codes::kInvalidArgument, "port 0 does not exist");
    if (info.Length() <= 5 || !info[5].IsBuffer()) throwError(env, codes::kInvalidArgument, "greeting must be a Buffer");
    std::vector<uint8_t> greeting = argOptionalBytes(info, 5);
    if (greeting.empty() || greeting.size() > engine::kMaxGreetingBytes) {
      throwError(env, codes::kInvalidArgument,
                 "greeting must be 1 to " + std::to_string(engine::kMaxGreetingBytes) + " bytes");
    }
    bool take = info.Length() > 6 && info[6].IsBoolean() && info[6].As<Napi::Boolean>().Value();
    std::string error;
    uint32_t conn = live(env).connectClient(handle, uint16_t(port), timeout, int(fd), argOptionalBytes(info, 4),
                                            std::move(greeting),
                                            take ? engine::Engine::ClientFd::Take : engine::Engine::ClientFd::Duplicate, error);
    if (conn == 0) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, conn);
  }

  // openClientDoor(path, backlog) -> door id; clients arrive as clientArrived events
  Napi::Value openClientDoor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = argString(info, 0, "path");
    uint32_t backlog = argUint(info, 1, "backlog", 65535);
    std::string error;
    uint32_t door = live(env).openClientDoor(path, int(backlog), error);
    if (door == 0) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, door);
  }

  Napi::Value closeClientDoor(const Napi::CallbackInfo& info) {
    live(info.Env()).closeClientDoor(argUint(info, 0, "door", UINT32_MAX));
    return info.Env().Undefined();
  }

  Napi::Value attachClient(const Napi::CallbackInfo& info) {
    uint32_t conn = argUint(info, 0, "conn", UINT32_MAX);
    uint32_t fd = argUint(info, 1, "fd", INT32_MAX);
    std::string error;
    if (!live(info.Env()).attachClient(conn, int(fd), argOptionalBytes(info, 2), error)) {
      throwError(info.Env(), codes::kSystem, error);
    }
    return info.Env().Undefined();
  }

  // spliceSockets(clientFd, toPhone?, phoneFd, toClient?) -> conn (a network Connect)
  Napi::Value spliceSockets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t clientFd = argUint(info, 0, "clientFd", INT32_MAX);
    uint32_t phoneFd = argUint(info, 2, "phoneFd", INT32_MAX);
    std::vector<uint8_t> toPhone = argOptionalBytes(info, 1);
    std::vector<uint8_t> toClient = argOptionalBytes(info, 3);
    if (toPhone.size() > engine::kSpliceMaxEarlyBytes || toClient.size() > engine::kSpliceMaxEarlyBytes) {
      throwError(env, codes::kInvalidArgument,
                 "early bytes must be at most " + std::to_string(engine::kSpliceMaxEarlyBytes));
    }
    std::string error;
    uint32_t conn = live(env).spliceSockets(int(clientFd), std::move(toPhone), int(phoneFd), std::move(toClient), error);
    if (conn == 0) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, conn);
  }

  Napi::Value closeConnection(const Napi::CallbackInfo& info) {
    live(info.Env()).closeConnection(argUint(info, 0, "conn", UINT32_MAX));
    return info.Env().Undefined();
  }

  Napi::Value attachDeviceRole(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = argString(info, 0, "cablePath");
    usb::CableDescriptor descriptor = descriptorFromJs(env, argObject(info, 1, "descriptor"));
    engine::DeviceRoleOptions options = deviceRoleOptions(info, 2);
    std::string error;
    uint32_t handle = live(env).attachDeviceRole(path, descriptor, options, error);
    if (!handle) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, handle);
  }

  Napi::Value attachDeviceRoleFfs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string dir = argString(info, 0, "ffsDir");
    engine::DeviceRoleOptions options = deviceRoleOptions(info, 1);
    std::string error;
    uint32_t handle = live(env).attachDeviceRoleFfs(dir, options, error);
    if (!handle) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, handle);
  }

  Napi::Value attachFfsPlaceholder(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string dir = argString(info, 0, "ffsDir");
    usb::FfsInterfaceSpec spec = ffsSpecFromJs(env, argObject(info, 1, "spec"));
    std::string error;
    uint32_t handle = live(env).attachFfsPlaceholder(dir, spec, error);
    if (!handle) throwError(env, codes::kSystem, error);
    return Napi::Number::New(env, handle);
  }

  // (kind: 'echo' | 'sink' | 'source', path?: string) -> TCP port or the path
  Napi::Value startTestService(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string kind = argString(info, 0, "kind");
    std::optional<sim::TestServiceKind> k = testServiceKind(kind);
    if (!k) throwError(env, codes::kInvalidArgument, "kind must be 'echo', 'sink' or 'source', not '" + kind + "'");
    std::string path = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    std::string error;
    engine::Engine& engine = live(env);
    std::string address;
    std::shared_ptr<sim::TestServiceListener> service =
        sim::TestServiceListener::open(engine.loop(), *k, path, address, error);
    if (!service) throwError(env, codes::kSystem, error);
    engine.host(service);
    if (path.empty()) return Napi::Number::New(env, std::stoi(address));
    return Napi::String::New(env, address);
  }

  static engine::DeviceRoleOptions deviceRoleOptions(const Napi::CallbackInfo& info, size_t index) {
    Napi::Env env = info.Env();
    engine::DeviceRoleOptions options;
    if (info.Length() > index && info[index].IsObject()) {
      Napi::Object o = info[index].As<Napi::Object>();
      if (o.Get("window").IsNumber()) options.window = o.Get("window").As<Napi::Number>().Uint32Value();
      if (o.Get("version").IsNumber()) options.version = o.Get("version").As<Napi::Number>().Int32Value();
      if (o.Get("controlLogs").IsBoolean()) options.controlLogs = o.Get("controlLogs").ToBoolean();
      // The raw bulk device is a bench tool: it lives in the testing addon
      // (src/native-testing.ts), not in the daemon.
      if (o.Get("raw").ToBoolean()) {
        throwError(env, codes::kInvalidArgument, "raw mode is in the testing addon (tsmuxd_testing), not this one");
      }
      if (o.Get("defaultLoopback").IsBoolean()) {
        options.defaultLoopback = o.Get("defaultLoopback").ToBoolean();
      }
      Napi::Value map = o.Get("portMap");
      if (map.IsArray()) {
        Napi::Array entries = map.As<Napi::Array>();
        for (uint32_t i = 0; i < entries.Length(); ++i) {
          Napi::Value e = entries.Get(i);
          if (!e.IsObject()) throwError(env, codes::kInvalidArgument, "portMap entries are objects");
          Napi::Object eo = e.As<Napi::Object>();
          Napi::Value port = eo.Get("port");
          if (!port.IsNumber()) throwError(env, codes::kInvalidArgument, "portMap entry needs a port");
          engine::LocalTarget t = localTargetFromJs(eo);
          options.portMap.emplace_back(uint16_t(port.As<Napi::Number>().Uint32Value()), t);
        }
      }
    }
    if (options.window < 256 || options.window > mux::kMaxWindow) {
      throwError(env, codes::kInvalidArgument, "window must be 256 .. 16776960 bytes");
    }
    return options;
  }

  Napi::Value mapDevicePort(const Napi::CallbackInfo& info) {
    uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
    uint32_t port = argUint(info, 1, "port", 65535);
    if (port == 0) throwError(info.Env(), codes::kInvalidArgument, "port 0 does not exist");
    std::optional<engine::LocalTarget> target;
    if (info.Length() > 2 && info[2].IsObject()) {
      Napi::Object o = info[2].As<Napi::Object>();
      // {tunnel: {certPem, keyPem}}: this port serves CoreDeviceProxy.
      target = o.Get("tunnel").IsObject() ? tunnelTargetFromJs(live(info.Env()), o.Get("tunnel").As<Napi::Object>())
                                          : localTargetFromJs(o);
      if (o.Get("once").IsBoolean()) target->once = o.Get("once").ToBoolean();
    }
    live(info.Env()).mapDevicePort(handle, uint16_t(port), std::move(target));
    return info.Env().Undefined();
  }

  Napi::Value startTunnel(const Napi::CallbackInfo& info) { return startTunnelJs(live(info.Env()), info); }
  Napi::Value configureTunnel(const Napi::CallbackInfo& info) { return configureTunnelJs(live(info.Env()), info); }
  Napi::Value tunnelConnect(const Napi::CallbackInfo& info) { return tunnelConnectJs(live(info.Env()), info); }
  Napi::Value attachTunnelClient(const Napi::CallbackInfo& info) { return attachTunnelClientJs(live(info.Env()), info); }
  Napi::Value listenTunnelPreamble(const Napi::CallbackInfo& info) { return listenTunnelPreambleJs(live(info.Env()), info); }
  Napi::Value openTunnelInterface(const Napi::CallbackInfo& info) { return openTunnelInterfaceJs(live(info.Env()), info); }
  Napi::Value closeTunnel(const Napi::CallbackInfo& info) { return closeTunnelJs(live(info.Env()), info); }
  Napi::Value startCapture(const Napi::CallbackInfo& info) { return startCaptureJs(live(info.Env()), info); }
  Napi::Value stopCapture(const Napi::CallbackInfo& info) { return stopCaptureJs(live(info.Env()), info); }
  Napi::Value addCaptureDevice(const Napi::CallbackInfo& info) { return addCaptureDeviceJs(live(info.Env()), info); }
  Napi::Value captureLabel(const Napi::CallbackInfo& info) { return captureLabelJs(live(info.Env()), info); }
  Napi::Value captureSecret(const Napi::CallbackInfo& info) { return captureSecretJs(live(info.Env()), info); }
  Napi::Value captureRunning(const Napi::CallbackInfo& info) { return captureRunningJs(live(info.Env()), info); }
  Napi::Value dialRemote(const Napi::CallbackInfo& info) { return dialRemoteJs(live(info.Env()), info); }
  Napi::Value attachDialled(const Napi::CallbackInfo& info) { return attachDialledJs(live(info.Env()), info); }
  Napi::Value serveRemote(const Napi::CallbackInfo& info) { return serveRemoteJs(live(info.Env()), info); }
  Napi::Value spliceFarGone(const Napi::CallbackInfo& info) { return spliceFarGoneJs(live(info.Env()), info); }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineStats& s = live(env).stats();
    Napi::Object o = Napi::Object::New(env);
    auto put = [&](const char* k, const EngineStats::Counter& c) {
      o.Set(k, double(c.load(std::memory_order_relaxed)));
    };
    put("transfersOut", s.transfersOut);
    put("transfersIn", s.transfersIn);
    put("zlpsOut", s.zlpsOut);
    put("zlpsIn", s.zlpsIn);
    put("usbBytesOut", s.usbBytesOut);
    put("usbBytesIn", s.usbBytesIn);
    put("payloadBytesToDevice", s.payloadBytesToDevice);
    put("payloadBytesFromDevice", s.payloadBytesFromDevice);
    put("packetsOut", s.packetsOut);
    put("packetsIn", s.packetsIn);
    put("acksOut", s.acksOut);
    put("rstsOut", s.rstsOut);
    put("rstsIn", s.rstsIn);
    put("controlIn", s.controlIn);
    put("logsSuppressed", s.logsSuppressed);
    put("jsWakeups", s.jsWakeups);
    put("jsEvents", s.jsEvents);
    put("windowStalls", s.windowStalls);
    put("zeroWindowResets", s.zeroWindowResets);
    put("devicesActive", s.devicesActive);
    put("connectionsActive", s.connectionsActive);
    put("connectionsTotal", s.connectionsTotal);
    return o;
  }

  Napi::Value requestSnapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t requestId = argUint(info, 0, "requestId", UINT32_MAX);
    if (!live(env).requestSnapshot(requestId)) {
      throwError(env, codes::kEngineClosed, "the event thread is not running");
    }
    return env.Undefined();
  }

  Napi::Value ref(const Napi::CallbackInfo& info) {
    if (engine_) events_->ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value unref(const Napi::CallbackInfo& info) {
    if (engine_) events_->unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    shutdown();
    return info.Env().Undefined();
  }

  engine::JsEventQueue* events_ = nullptr;
  std::unique_ptr<engine::Engine> engine_;
  Napi::Env::CleanupHook<std::function<void()>> cleanup_;
  bool hookRan_ = false;
};

}  // namespace

void initEngine(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::define(env));
}

}  // namespace tsmuxd::addon
