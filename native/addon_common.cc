// What both addons (tsmuxd and tsmuxd_testing) share of the N-API surface:
// the injected error class, argument checks, and the descriptor conversions.
#include "addon.h"
#include "core/fault.h"

namespace tsmuxd::addon {

Napi::Value makeError(Napi::Env env, const std::string& code, const std::string& message) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (data && !data->errorClass.IsEmpty()) {
    return data->errorClass.New({Napi::String::New(env, message), Napi::String::New(env, code)});
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err.Value();
}

void throwError(Napi::Env env, const std::string& code, const std::string& message) {
  throw Napi::Error(env, makeError(env, code, message));
}

uint32_t argUint(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throwError(info.Env(), codes::kInvalidArgument, std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= double(max)) || v != double(uint64_t(v))) {
    throwError(info.Env(), codes::kInvalidArgument,
               std::string(name) + " must be an integer from 0 to " + std::to_string(max));
  }
  return uint32_t(v);
}

std::string argString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) {
    throwError(info.Env(), codes::kInvalidArgument, std::string(name) + " must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Object argObject(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsObject()) {
    throwError(info.Env(), codes::kInvalidArgument, std::string(name) + " must be an object");
  }
  return info[i].As<Napi::Object>();
}

std::vector<uint8_t> argOptionalBytes(const Napi::CallbackInfo& info, size_t i) {
  std::vector<uint8_t> bytes;
  if (info.Length() > i && info[i].IsBuffer()) {
    auto buf = info[i].As<Napi::Buffer<uint8_t>>();
    bytes.assign(buf.Data(), buf.Data() + buf.Length());
  }
  return bytes;
}

namespace {

uint32_t fieldUint(Napi::Env env, Napi::Object o, const char* key, uint32_t max,
                   uint32_t fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= double(max)) || d != double(uint64_t(d))) {
    throwError(env, codes::kInvalidArgument,
               std::string("descriptor field ") + key + " must be an integer from 0 to " +
                   std::to_string(max));
  }
  return uint32_t(d);
}

Napi::Array fieldArray(Napi::Env env, Napi::Object o, const char* key, size_t max) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray() || v.As<Napi::Array>().Length() > max) {
    throwError(env, codes::kInvalidArgument,
               std::string("descriptor field ") + key + " must be an array of at most " +
                   std::to_string(max));
  }
  return v.As<Napi::Array>();
}

Napi::Object elementObject(Napi::Env env, Napi::Array a, uint32_t i) {
  Napi::Value v = a.Get(i);
  if (!v.IsObject()) throwError(env, codes::kInvalidArgument, "descriptor entries must be objects");
  return v.As<Napi::Object>();
}

}  // namespace

Napi::Object descriptorToJs(Napi::Env env, const usb::CableDescriptor& d) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vendorId", d.vendorId);
  o.Set("productId", d.productId);
  o.Set("bcdDevice", d.bcdDevice);
  o.Set("speed", d.speed);
  o.Set("activeConfiguration", d.activeConfiguration);
  o.Set("serial", d.serial);
  Napi::Array configs = Napi::Array::New(env, d.configurations.size());
  for (size_t c = 0; c < d.configurations.size(); ++c) {
    const auto& config = d.configurations[c];
    Napi::Object co = Napi::Object::New(env);
    co.Set("value", config.value);
    Napi::Array ifaces = Napi::Array::New(env, config.interfaces.size());
    for (size_t i = 0; i < config.interfaces.size(); ++i) {
      const auto& iface = config.interfaces[i];
      Napi::Object io = Napi::Object::New(env);
      io.Set("number", iface.number);
      io.Set("interfaceClass", iface.interfaceClass);
      io.Set("subclass", iface.subclass);
      io.Set("protocol", iface.protocol);
      Napi::Array eps = Napi::Array::New(env, iface.endpoints.size());
      for (size_t e = 0; e < iface.endpoints.size(); ++e) {
        Napi::Object eo = Napi::Object::New(env);
        eo.Set("address", iface.endpoints[e].address);
        eo.Set("attributes", iface.endpoints[e].attributes);
        eo.Set("maxPacketSize", iface.endpoints[e].maxPacketSize);
        eps.Set(uint32_t(e), eo);
      }
      io.Set("endpoints", eps);
      ifaces.Set(uint32_t(i), io);
    }
    co.Set("interfaces", ifaces);
    configs.Set(uint32_t(c), co);
  }
  o.Set("configurations", configs);
  return o;
}

usb::CableDescriptor descriptorFromJs(Napi::Env env, Napi::Object o) {
  usb::CableDescriptor d;
  d.vendorId = uint16_t(fieldUint(env, o, "vendorId", 0xFFFF, 0));
  d.productId = uint16_t(fieldUint(env, o, "productId", 0xFFFF, 0));
  d.bcdDevice = uint16_t(fieldUint(env, o, "bcdDevice", 0xFFFF, 0));
  d.speed = uint8_t(fieldUint(env, o, "speed", 5, 3));
  d.activeConfiguration = uint8_t(fieldUint(env, o, "activeConfiguration", 255, 0));
  Napi::Value serial = o.Get("serial");
  if (!serial.IsString()) throwError(env, codes::kInvalidArgument, "descriptor.serial must be a string");
  d.serial = serial.As<Napi::String>().Utf8Value();
  if (d.serial.size() > usb::kMaxSerialLength) {
    throwError(env, codes::kInvalidArgument, "descriptor.serial is longer than 255 bytes");
  }
  Napi::Array configs = fieldArray(env, o, "configurations", usb::kMaxConfigurations);
  for (uint32_t c = 0; c < configs.Length(); ++c) {
    Napi::Object co = elementObject(env, configs, c);
    usb::ConfigurationDescriptor config;
    config.value = uint8_t(fieldUint(env, co, "value", 255, 1));
    Napi::Array ifaces = fieldArray(env, co, "interfaces", usb::kMaxInterfaces);
    for (uint32_t i = 0; i < ifaces.Length(); ++i) {
      Napi::Object io = elementObject(env, ifaces, i);
      usb::InterfaceDescriptor iface;
      iface.number = uint8_t(fieldUint(env, io, "number", 255, 0));
      iface.interfaceClass = uint8_t(fieldUint(env, io, "interfaceClass", 255, 0));
      iface.subclass = uint8_t(fieldUint(env, io, "subclass", 255, 0));
      iface.protocol = uint8_t(fieldUint(env, io, "protocol", 255, 0));
      Napi::Array eps = fieldArray(env, io, "endpoints", usb::kMaxEndpoints);
      for (uint32_t e = 0; e < eps.Length(); ++e) {
        Napi::Object eo = elementObject(env, eps, e);
        usb::EndpointDescriptor ep;
        ep.address = uint8_t(fieldUint(env, eo, "address", 255, 0));
        ep.attributes = uint8_t(fieldUint(env, eo, "attributes", 255, 2));
        ep.maxPacketSize = uint16_t(fieldUint(env, eo, "maxPacketSize", 0xFFFF, 512));
        iface.endpoints.push_back(ep);
      }
      config.interfaces.push_back(std::move(iface));
    }
    d.configurations.push_back(std::move(config));
  }
  return d;
}

usb::FfsInterfaceSpec ffsSpecFromJs(Napi::Env env, Napi::Object o) {
  usb::FfsInterfaceSpec s;
  s.interfaceClass = uint8_t(fieldUint(env, o, "interfaceClass", 255, s.interfaceClass));
  s.subclass = uint8_t(fieldUint(env, o, "subclass", 255, s.subclass));
  s.protocol = uint8_t(fieldUint(env, o, "protocol", 255, s.protocol));
  s.fullSpeedMaxPacket = uint16_t(fieldUint(env, o, "fullSpeedMaxPacket", 0xFFFF, s.fullSpeedMaxPacket));
  s.highSpeedMaxPacket = uint16_t(fieldUint(env, o, "highSpeedMaxPacket", 0xFFFF, s.highSpeedMaxPacket));
  Napi::Value name = o.Get("name");
  if (!name.IsUndefined()) {
    if (!name.IsString()) throwError(env, codes::kInvalidArgument, "name must be a string");
    s.name = name.As<Napi::String>().Utf8Value();
  }
  if (o.Get("endpoints").IsUndefined()) return s;
  Napi::Array eps = fieldArray(env, o, "endpoints", usb::kFfsMaxEndpoints);
  s.endpoints.clear();
  for (uint32_t i = 0; i < eps.Length(); ++i) {
    Napi::Object eo = elementObject(env, eps, i);
    Napi::Value dir = eo.Get("direction");
    Napi::Value type = eo.Get("type");
    std::string d = dir.IsString() ? dir.As<Napi::String>().Utf8Value() : "";
    std::string t = type.IsUndefined() ? "bulk" : type.IsString() ? type.As<Napi::String>().Utf8Value() : "";
    if ((d != "in" && d != "out") || (t != "bulk" && t != "interrupt")) {
      throwError(env, codes::kInvalidArgument,
                 "endpoints need direction 'in' or 'out' and type 'bulk' or 'interrupt'");
    }
    usb::FfsEndpointSpec e;
    e.in = d == "in";
    e.interrupt = t == "interrupt";
    e.interruptMaxPacket = uint16_t(fieldUint(env, eo, "maxPacketSize", 0xFFFF, e.interruptMaxPacket));
    e.intervalMs = uint8_t(fieldUint(env, eo, "intervalMs", 255, e.intervalMs));
    s.endpoints.push_back(e);
  }
  return s;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throwError(info.Env(), codes::kInvalidArgument, "setErrorClass needs a constructor");
  }
  info.Env().GetInstanceData<AddonData>()->errorClass =
      Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace tsmuxd::addon
