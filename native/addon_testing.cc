// The testing addon (tsmuxd_testing.node): what only tests, benches and the
// lab use, kept out of the daemon's prebuild. Loaded by src/native-testing.ts.
//   wire            the wire format and a raw cable end (addon_wire.cc)
//   RawBulkDevice   the lab's raw bulk measuring device on FunctionFS
//   lifetimeProbes  the event loop's lifetime checks (testing/lifetime_probe.h)
#include <memory>
#include <string>

#include "addon.h"
#include "core/fault.h"
#include "testing/lifetime_probe.h"
#include "testing/raw_bulk_device.h"

namespace tsmuxd::addon {

void initWire(Napi::Env env, Napi::Object exports);

namespace {

struct LogLine {
  const char* level;
  std::string text;
};

void deliverLog(Napi::Env env, Napi::Function callback, std::nullptr_t*, LogLine* line) {
  if (env != nullptr && callback != nullptr) {
    callback.Call({Napi::String::New(env, line->level), Napi::String::New(env, line->text)});
  }
  delete line;
}

using LogFunction = Napi::TypedThreadSafeFunction<std::nullptr_t, LogLine, deliverLog>;

// new RawBulkDevice(ffsDir, onLog(level, text)); close(); stats()
class RawBulkDeviceWrap : public Napi::ObjectWrap<RawBulkDeviceWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "RawBulkDevice",
                       {InstanceMethod<&RawBulkDeviceWrap::close>("close"),
                        InstanceMethod<&RawBulkDeviceWrap::stats>("stats")});
  }

  explicit RawBulkDeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RawBulkDeviceWrap>(info) {
    Napi::Env env = info.Env();
    std::string dir = argString(info, 0, "ffsDir");
    if (info.Length() < 2 || !info[1].IsFunction()) throwError(env, codes::kInvalidArgument, "onLog must be a function");
    log_ = LogFunction::New(env, info[1].As<Napi::Function>(), "tsmuxd-raw-log", 0, 1);
    LogFunction log = log_;
    std::string error;
    device_ = testing::RawBulkDevice::open(
        dir, [log](const char* level, std::string text) mutable {
          log.NonBlockingCall(new LogLine{level, std::move(text)});
        },
        error);
    if (!device_) {
      log_.Release();
      throwError(env, codes::kSystem, error);
    }
  }
  ~RawBulkDeviceWrap() override { shut(); }

 private:
  void shut() {
    if (!device_) return;
    device_->close();  // joins the device's thread: no log call follows
    device_.reset();
    log_.Release();
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    shut();
    return info.Env().Undefined();
  }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!device_) return o;
    EngineStats& s = device_->stats();
    o.Set("transfersOut", double(s.transfersOut.load()));
    o.Set("transfersIn", double(s.transfersIn.load()));
    o.Set("usbBytesOut", double(s.usbBytesOut.load()));
    o.Set("usbBytesIn", double(s.usbBytesIn.load()));
    return o;
  }

  std::unique_ptr<testing::RawBulkDevice> device_;
  LogFunction log_;
};

// lifetimeProbes() -> [{name, ok, detail}]; blocks for at most a few seconds.
Napi::Value LifetimeProbes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<testing::ProbeResult> results = testing::runLifetimeProbes();
  Napi::Array out = Napi::Array::New(env, results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", results[i].name);
    o.Set("ok", results[i].ok);
    o.Set("detail", results[i].detail);
    out.Set(uint32_t(i), o);
  }
  return out;
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  initWire(env, exports);
  exports.Set("RawBulkDevice", RawBulkDeviceWrap::define(env));
  exports.Set("lifetimeProbes", Napi::Function::New(env, LifetimeProbes, "lifetimeProbes"));
  return exports;
}

}  // namespace

}  // namespace tsmuxd::addon

static Napi::Object InitTsmuxdTesting(Napi::Env env, Napi::Object exports) {
  return tsmuxd::addon::init(env, exports);
}

NODE_API_MODULE(tsmuxd_testing, InitTsmuxdTesting)
