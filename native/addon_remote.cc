// Remote usbmux as JS sees it (docs/remote.md): argument checks here, the
// work in engine/splices.cc.
#include "addon.h"
#include "core/fault.h"
#include "engine/engine.h"
#include "engine/socket_splice.h"

namespace tsmuxd::addon {

namespace {

// A PEM file's worth: certificates and keys are a few KiB, a CA bundle more.
constexpr size_t kMaxPemBytes = 256 * 1024;

std::string pemField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throwError(env, codes::kInvalidArgument, std::string(key) + " must be a PEM string");
  std::string text = v.As<Napi::String>().Utf8Value();
  if (text.empty() || text.size() > kMaxPemBytes) {
    throwError(env, codes::kInvalidArgument,
               std::string(key) + " must be 1 to " + std::to_string(kMaxPemBytes) + " bytes of PEM");
  }
  return text;
}

engine::RemoteTls remoteTlsFromJs(Napi::Env env, const Napi::Object& o) {
  return {pemField(env, o, "certPem"), pemField(env, o, "keyPem"), pemField(env, o, "caPem")};
}

}  // namespace

// dialRemote(fd, tls | null, request) -> conn
Napi::Value dialRemoteJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd = argUint(info, 0, "fd", INT32_MAX);
  std::optional<engine::RemoteTls> tls;
  if (info[1].IsObject()) tls = remoteTlsFromJs(env, info[1].As<Napi::Object>());
  else if (!info[1].IsNull() && !info[1].IsUndefined()) throwError(env, codes::kInvalidArgument, "tls must be an object or null");
  std::vector<uint8_t> request = argOptionalBytes(info, 2);
  if (request.empty() || request.size() > engine::kSpliceMaxEarlyBytes) {
    throwError(env, codes::kInvalidArgument, "request must be 1 to " + std::to_string(engine::kSpliceMaxEarlyBytes) + " bytes");
  }
  std::string error;
  uint32_t conn = engine.dialRemote(int(fd), tls ? &*tls : nullptr, std::move(request), error);
  if (!conn) throwError(env, codes::kSystem, error);
  return Napi::Number::New(env, conn);
}

// attachDialled(conn, clientFd, pipelined?)
Napi::Value attachDialledJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  uint32_t conn = argUint(info, 0, "conn", UINT32_MAX);
  uint32_t fd = argUint(info, 1, "fd", INT32_MAX);
  std::string error;
  if (!engine.attachDialled(conn, int(fd), argOptionalBytes(info, 2), error)) {
    throwError(info.Env(), codes::kSystem, error);
  }
  return info.Env().Undefined();
}

// spliceFarGone(conn, reason)
Napi::Value spliceFarGoneJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  uint32_t conn = argUint(info, 0, "conn", UINT32_MAX);
  std::string reason = argString(info, 1, "reason");
  if (reason.size() > 1024) reason.resize(1024);
  engine.spliceFarGone(conn, std::move(reason));
  return info.Env().Undefined();
}

// serveRemote(fd, tls) -> {conn, fd}
Napi::Value serveRemoteJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t fd = argUint(info, 0, "fd", INT32_MAX);
  engine::RemoteTls tls = remoteTlsFromJs(env, argObject(info, 1, "tls"));
  std::string error;
  int localFd = -1;
  uint32_t conn = engine.serveRemote(int(fd), tls, localFd, error);
  if (!conn) throwError(env, codes::kSystem, error);
  Napi::Object o = Napi::Object::New(env);
  o.Set("conn", conn);
  o.Set("fd", localFd);
  return o;
}

}  // namespace tsmuxd::addon
