// The tunnel half of the Engine class as JS sees it (addon_engine.cc holds
// the rest): argument checks here, the work in engine/tunnels.cc.
#include <arpa/inet.h>

#include <cstring>

#include "addon.h"
#include "core/fault.h"
#include "engine/engine.h"
#include "tunnel/limits.h"

namespace tsmuxd::addon {

namespace {

ip6_addr_t ipv6FromJs(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsString()) throwError(env, codes::kInvalidArgument, std::string(name) + " must be an IPv6 address string");
  std::string text = v.As<Napi::String>().Utf8Value();
  struct in6_addr a;
  if (inet_pton(AF_INET6, text.c_str(), &a) != 1) {
    throwError(env, codes::kInvalidArgument, std::string(name) + " '" + text + "' is not an IPv6 address");
  }
  ip6_addr_t out;
  std::memcpy(&out.addr, a.s6_addr, 16);
  return out;
}

uint32_t optionalUint(Napi::Env env, const Napi::Object& o, const char* key, uint32_t min, uint32_t max,
                      uint32_t fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= min && d <= max) || d != double(uint64_t(d))) {
    throwError(env, codes::kInvalidArgument,
               std::string(key) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return uint32_t(d);
}

std::string stringField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throwError(env, codes::kInvalidArgument, std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

}  // namespace

engine::LocalTarget tunnelTargetFromJs(engine::Engine& engine, const Napi::Object& identity) {
  Napi::Env env = identity.Env();
  engine::LocalTarget t;
  t.service = engine.tunnelService(stringField(env, identity, "certPem"), stringField(env, identity, "keyPem"));
  return t;
}

Napi::Value startTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t conn = argUint(info, 0, "conn", UINT32_MAX);
  Napi::Object o = argObject(info, 1, "options");
  std::string request = stringField(env, o, "request");
  if (request.size() > tunnel::kMaxCdTunnelBody) {
    throwError(env, codes::kInvalidArgument, "request is over the " + std::to_string(tunnel::kMaxCdTunnelBody) + "-byte limit");
  }
  uint32_t id = engine.startTunnel(conn, stringField(env, o, "certPem"), stringField(env, o, "keyPem"), std::move(request));
  return Napi::Number::New(env, id);
}

Napi::Value configureTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = argUint(info, 0, "tunnel", UINT32_MAX);
  Napi::Object o = argObject(info, 1, "config");
  tunnel::TunnelConfig c;
  c.localAddress = ipv6FromJs(env, o.Get("localAddress"), "localAddress");
  c.peerAddress = ipv6FromJs(env, o.Get("peerAddress"), "peerAddress");
  c.mtu = optionalUint(env, o, "mtu", tunnel::kMinMtu, tunnel::kMaxMtu, 0);
  if (c.mtu == 0) throwError(env, codes::kInvalidArgument, "mtu is required");
  c.sendMss = uint16_t(optionalUint(env, o, "sendMss", 536, 65535, 0));
  if (o.Get("response").IsString()) c.response = o.Get("response").As<Napi::String>().Utf8Value();
  if (c.response.size() > tunnel::kMaxCdTunnelBody) {
    throwError(env, codes::kInvalidArgument, "response is over the " + std::to_string(tunnel::kMaxCdTunnelBody) + "-byte limit");
  }
  c.dropOversize = optionalUint(env, o, "dropOversize", 0, 65535, 0);
  Napi::Value loss = o.Get("lossRate");
  if (loss.IsNumber()) {
    c.lossRate = loss.As<Napi::Number>().DoubleValue();
    if (!(c.lossRate >= 0 && c.lossRate < 1)) throwError(env, codes::kInvalidArgument, "lossRate must be in [0, 1)");
  }
  Napi::Value ports = o.Get("ports");
  if (ports.IsArray()) {
    Napi::Array list = ports.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); ++i) {
      if (!list.Get(i).IsObject()) throwError(env, codes::kInvalidArgument, "ports entries are objects");
      Napi::Object e = list.Get(i).As<Napi::Object>();
      uint32_t port = optionalUint(env, e, "port", 1, 65535, 0);
      if (port == 0) throwError(env, codes::kInvalidArgument, "a ports entry needs a port");
      tunnel::PortTarget t;
      if (e.Get("path").IsString()) t.path = e.Get("path").As<Napi::String>().Utf8Value();
      if (e.Get("host").IsString()) t.host = e.Get("host").As<Napi::String>().Utf8Value();
      t.port = uint16_t(optionalUint(env, e, "targetPort", 1, 65535, port));
      c.ports[uint16_t(port)] = t;
    }
  }
  engine.configureTunnel(id, std::move(c));
  return env.Undefined();
}

Napi::Value tunnelConnectJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = argUint(info, 0, "tunnel", UINT32_MAX);
  ip6_addr_t address = ipv6FromJs(env, info.Length() > 1 ? info[1] : env.Undefined(), "address");
  uint32_t port = argUint(info, 2, "port", 65535);
  if (port == 0) throwError(env, codes::kInvalidArgument, "port 0 does not exist");
  uint32_t timeout = argUint(info, 3, "timeoutMs", 3600000);
  return Napi::Number::New(env, engine.tunnelConnect(id, address, uint16_t(port), timeout));
}

Napi::Value attachTunnelClientJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  uint32_t stream = argUint(info, 0, "stream", UINT32_MAX);
  uint32_t fd = argUint(info, 1, "fd", INT32_MAX);
  std::string error;
  if (!engine.attachTunnelClient(stream, int(fd), argOptionalBytes(info, 2), error)) {
    throwError(info.Env(), codes::kSystem, error);
  }
  return info.Env().Undefined();
}

Napi::Value listenTunnelPreambleJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = argUint(info, 0, "tunnel", UINT32_MAX);
  std::string host = argString(info, 1, "host");
  uint32_t port = argUint(info, 2, "port", 65535);
  std::string error;
  uint16_t bound = engine.listenTunnelPreamble(id, host, uint16_t(port), error);
  if (!bound) throwError(env, codes::kSystem, error);
  return Napi::Number::New(env, bound);
}

Napi::Value openTunnelInterfaceJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = argUint(info, 0, "tunnel", UINT32_MAX);
  Napi::Object o = argObject(info, 1, "setup");
  tunnel::TunSetup setup;
  setup.namePattern = stringField(env, o, "namePattern");
  if (setup.namePattern.empty() || setup.namePattern.size() > tunnel::kMaxInterfaceName ||
      setup.namePattern.find('/') != std::string::npos) {
    throwError(env, codes::kInvalidArgument,
               "namePattern must be 1-" + std::to_string(tunnel::kMaxInterfaceName) + " characters, without '/'");
  }
  setup.address = ipv6FromJs(env, o.Get("address"), "address");
  setup.prefixLength = uint8_t(optionalUint(env, o, "prefixLength", 1, 128, 64));
  setup.mtu = optionalUint(env, o, "mtu", tunnel::kMinMtu, tunnel::kMaxMtu, 0);
  if (setup.mtu == 0) throwError(env, codes::kInvalidArgument, "mtu is required");
  std::string name, error;
  if (!engine.openTunnelInterface(id, setup, name, error)) throwError(env, codes::kSystem, error);
  return Napi::String::New(env, name);
}

Napi::Value closeTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info) {
  engine.closeTunnel(argUint(info, 0, "tunnel", UINT32_MAX));
  return info.Env().Undefined();
}

}  // namespace tsmuxd::addon
