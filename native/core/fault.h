#pragma once
#include <string>

namespace tsmuxd {

// A reason why input was rejected. `code` is a stable string that reaches JS
// as the `code` of the injected error class; `message` is for humans.
struct Fault {
  const char* code = nullptr;
  std::string message;

  Fault() = default;
  Fault(const char* c, std::string m) : code(c), message(std::move(m)) {}
  explicit operator bool() const { return code != nullptr; }
};

namespace codes {
constexpr const char* kBadLength = "ERR_MUX_BAD_LENGTH";
constexpr const char* kUnknownProtocol = "ERR_MUX_UNKNOWN_PROTOCOL";
constexpr const char* kBadTcpOffset = "ERR_MUX_BAD_TCP_OFFSET";
constexpr const char* kBadVersion = "ERR_MUX_BAD_VERSION";
constexpr const char* kShortBody = "ERR_MUX_SHORT_BODY";
constexpr const char* kProtocolViolation = "ERR_MUX_PROTOCOL_VIOLATION";
constexpr const char* kMessageTooLarge = "ERR_MUX_MESSAGE_TOO_LARGE";
constexpr const char* kMessageSizeMismatch = "ERR_MUX_MESSAGE_SIZE_MISMATCH";
constexpr const char* kOversizeTransfer = "ERR_CABLE_OVERSIZE_TRANSFER";
constexpr const char* kBadDescriptor = "ERR_CABLE_DESCRIPTOR";
constexpr const char* kCableIo = "ERR_CABLE_IO";
constexpr const char* kFfsIo = "ERR_FFS_IO";
constexpr const char* kUnplugged = "ERR_UNPLUGGED";
constexpr const char* kNoDevice = "ERR_NO_DEVICE";
constexpr const char* kNoConnection = "ERR_NO_CONNECTION";
constexpr const char* kInvalidArgument = "ERR_INVALID_ARGUMENT";
constexpr const char* kSystem = "ERR_SYSTEM";
constexpr const char* kEngineClosed = "ERR_ENGINE_CLOSED";
constexpr const char* kUsbUnavailable = "ERR_USB_UNAVAILABLE";
constexpr const char* kUsbOpen = "ERR_USB_OPEN";
constexpr const char* kUsbIo = "ERR_USB_IO";
constexpr const char* kTimeout = "ERR_TIMEOUT";
}  // namespace codes

}  // namespace tsmuxd
