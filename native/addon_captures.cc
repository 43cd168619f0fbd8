// The capture half of the Engine class as JS sees it (addon_engine.cc holds
// the rest): argument checks here, the work in engine/captures.cc.
#include "addon.h"
#include "core/capture_tap.h"
#include "core/fault.h"
#include "engine/engine.h"

namespace tsmuxd::addon {

namespace {
// What names one device in a capture (a UDID is 25-40 characters).
constexpr size_t kMaxLabelBytes = 256;
}  // namespace

// startCapture(fd, {handles?, port?, ringBytes?, application}) -> id
Napi::Value startCaptureJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = int(argUint(info, 0, "fd", INT32_MAX));
  Napi::Object o = argObject(info, 1, "options");
  core::CaptureFilter filter;
  Napi::Value handles = o.Get("handles");
  if (!handles.IsUndefined() && !handles.IsNull()) {
    if (!handles.IsArray()) throwError(env, codes::kInvalidArgument, "handles must be an array of device handles");
    Napi::Array list = handles.As<Napi::Array>();
    if (list.Length() > core::kMaxCaptureHandles) {
      throwError(env, codes::kInvalidArgument, "more than " + std::to_string(core::kMaxCaptureHandles) + " handles");
    }
    filter.allDevices = false;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      Napi::Value v = list.Get(i);
      if (!v.IsNumber()) throwError(env, codes::kInvalidArgument, "handles must be numbers");
      filter.handles.push_back(v.As<Napi::Number>().Uint32Value());
    }
  }
  Napi::Value port = o.Get("port");
  if (port.IsNumber()) {
    double p = port.As<Napi::Number>().DoubleValue();
    if (!(p >= 1 && p <= 65535) || p != double(uint32_t(p))) throwError(env, codes::kInvalidArgument, "port must be 1-65535");
    filter.port = uint16_t(p);
  }
  size_t ringBytes = core::kDefaultCaptureRingBytes;
  Napi::Value ring = o.Get("ringBytes");
  if (ring.IsNumber()) {
    double r = ring.As<Napi::Number>().DoubleValue();
    if (!(r >= double(core::kMinCaptureRingBytes) && r <= double(core::kMaxCaptureRingBytes))) {
      throwError(env, codes::kInvalidArgument,
                 "ringBytes must be from " + std::to_string(core::kMinCaptureRingBytes) + " to " +
                     std::to_string(core::kMaxCaptureRingBytes));
    }
    ringBytes = size_t(r);
  }
  std::string application = o.Get("application").IsString() ? o.Get("application").As<Napi::String>().Utf8Value() : "tsmuxd";
  if (application.size() > kMaxLabelBytes) application.resize(kMaxLabelBytes);
  std::string error;
  uint32_t id = engine.startCapture(fd, std::move(filter), ringBytes, std::move(application), error);
  if (!id) throwError(env, "EIO", error);
  return Napi::Number::New(env, id);
}

Napi::Value stopCaptureJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  uint32_t id = argUint(info, 0, "capture", UINT32_MAX);
  std::string reason = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "stopped";
  if (reason.size() > kMaxLabelBytes) reason.resize(kMaxLabelBytes);
  engine.stopCapture(id, std::move(reason));
  return info.Env().Undefined();
}

Napi::Value addCaptureDeviceJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  engine.addCaptureDevice(argUint(info, 0, "capture", UINT32_MAX), argUint(info, 1, "handle", UINT32_MAX));
  return info.Env().Undefined();
}

Napi::Value captureLabelJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  uint32_t handle = argUint(info, 0, "handle", UINT32_MAX);
  std::string text = argString(info, 1, "label");
  if (text.size() > kMaxLabelBytes) text.resize(kMaxLabelBytes);
  engine.captureLabel(handle, std::move(text));
  return info.Env().Undefined();
}

// captureSecret(line): one SSLKEYLOGFILE line; longer than the cap, it is ignored.
Napi::Value captureSecretJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  std::string line = argString(info, 0, "line");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (!line.empty() && line.size() <= core::kMaxSecretLineBytes) engine.captureSecret(std::move(line));
  return info.Env().Undefined();
}

Napi::Value captureRunningJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), engine.captureRunning());
}

}  // namespace tsmuxd::addon
