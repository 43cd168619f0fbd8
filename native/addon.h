#pragma once
// Shared pieces of the N-API surface (of both addons: tsmuxd and tsmuxd_testing): per-environment data, the injected
// error class, and conversions of the cable descriptor.
#include <napi.h>

#include <string>
#include <vector>

#include "engine/events.h"
#include "usb/cable_descriptor.h"
#include "usb/ffs_descriptors.h"

namespace tsmuxd::addon {

struct AddonData {
  Napi::FunctionReference errorClass;  // injected by src/native.ts
};

// setErrorClass(cls): src/native.ts injects NativeError into each addon.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

// Throws an instance of the injected TS error class (a plain Error with a
// `code` until it is injected).
[[noreturn]] void throwError(Napi::Env env, const std::string& code, const std::string& message);
Napi::Value makeError(Napi::Env env, const std::string& code, const std::string& message);

Napi::Object descriptorToJs(Napi::Env env, const usb::CableDescriptor& d);
usb::CableDescriptor descriptorFromJs(Napi::Env env, Napi::Object o);
// {interfaceClass, subclass, protocol, name, fullSpeedMaxPacket,
//  highSpeedMaxPacket, endpoints: [{direction, type, maxPacketSize, intervalMs}]}
usb::FfsInterfaceSpec ffsSpecFromJs(Napi::Env env, Napi::Object o);

// Argument helpers that throw ERR_INVALID_ARGUMENT.
uint32_t argUint(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max);
std::string argString(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Object argObject(const Napi::CallbackInfo& info, size_t i, const char* name);
// An optional Buffer argument's bytes (empty when absent).
std::vector<uint8_t> argOptionalBytes(const Napi::CallbackInfo& info, size_t i);

// A NativeEvent as the object src/native.ts types (addon_events.cc).
Napi::Value eventToJs(Napi::Env env, const engine::NativeEvent& ev);

void initEngine(Napi::Env env, Napi::Object exports);

}  // namespace tsmuxd::addon

namespace tsmuxd::engine {
class Engine;
struct LocalTarget;
}  // namespace tsmuxd::engine

namespace tsmuxd::addon {

// The Engine class's tunnel methods (addon_tunnels.cc).
engine::LocalTarget tunnelTargetFromJs(engine::Engine& engine, const Napi::Object& identity);
Napi::Value startTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value configureTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value tunnelConnectJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value attachTunnelClientJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value listenTunnelPreambleJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value openTunnelInterfaceJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value closeTunnelJs(engine::Engine& engine, const Napi::CallbackInfo& info);
void initPeerCredentials(Napi::Env env, Napi::Object exports);
// Remote usbmux (addon_remote.cc).
Napi::Value dialRemoteJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value attachDialledJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value serveRemoteJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value spliceFarGoneJs(engine::Engine& engine, const Napi::CallbackInfo& info);

// The Engine class's capture methods (addon_captures.cc).
Napi::Value startCaptureJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value stopCaptureJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value addCaptureDeviceJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value captureLabelJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value captureSecretJs(engine::Engine& engine, const Napi::CallbackInfo& info);
Napi::Value captureRunningJs(engine::Engine& engine, const Napi::CallbackInfo& info);

}  // namespace tsmuxd::addon
