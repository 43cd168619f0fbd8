#pragma once
// What the data plane tells the control plane. Only rare things travel this
// way (attach, handshake, connect result, close, log lines, the snapshots JS
// asked for); bytes never do.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/snapshot.h"
#include "usb/cable_descriptor.h"

namespace tsmuxd::engine {

struct NativeEvent {
  enum class Type {
    Attached, Ready, Detached, Log, Connected, ConnectFailed, Closed, Snapshot, TunnelHandshake, TunnelClosed,
    ClientArrived, CaptureEnded, RemoteReply, RemoteSecure
  };
  explicit NativeEvent(Type t) : type(t) {}
  Type type;
  uint32_t handle = 0;
  uint32_t conn = 0;
  int version = 0;
  const char* level = "info";
  std::string code;
  std::string text;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  std::shared_ptr<usb::CableDescriptor> descriptor;
  // Attached: what carries the device ("cable" or "usb") and, for USB,
  // usbmuxd's LocationID ((bus << 16) | address).
  const char* link = "cable";
  uint32_t locationId = 0;
  // Snapshot: the answer to requestSnapshot(requestId).
  uint32_t requestId = 0;
  std::shared_ptr<EngineSnapshot> snapshot;
  // TunnelHandshake / TunnelClosed: the tunnel's id and role; `text` is the
  // handshake body or the reason.
  uint32_t tunnel = 0;
  const char* role = "host";
  // ClientArrived: a usbmuxd client from the front door (client_door.h),
  // with its fd (now JS's), credentials and first message; `text` says why
  // an incomplete one was handed over.
  int fd = -1;
  bool hasCredentials = false;
  uint32_t pid = 0, uid = 0, gid = 0;
  bool complete = false;
  std::vector<uint8_t> bytes;
  // CaptureEnded: the capture's id, what it wrote (`bytesOut` bytes of
  // pcapng), what its full ring dropped; `text` says why it ended and
  // `code` is "EIO" when its output failed.
  uint32_t capture = 0;
  uint64_t packets = 0;
  uint64_t dropped = 0;
  // RemoteReply: `bytes` is the remote's answer to a dialled Connect.
  // RemoteSecure: `text` describes the TLS session and the peer.
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Called on the event thread; delivery to JS is batched per loop turn.
  virtual void emit(NativeEvent ev) = 0;
};

}  // namespace tsmuxd::engine
