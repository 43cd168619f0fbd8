#pragma once
// The usbmuxd socket's front door, on the event thread: it accepts clients
// and reads each one's first message, then hands the client to JS as one
// event carrying the fd, the peer's credentials and that message. Most
// clients come for one Connect, and this way JS decides it without a socket
// object, a stream or a read of its own (docs/server.md, "The front door").
//
// The door holds a client only until its first message is whole, and bounds
// that: at most kDoorMaxWaiting clients, each for at most kDoorWaitMs, each
// with at most one message (kDoorMaxMessage bytes). A client past any bound is
// handed over with what it sent so far, and JS's own rules take it from there.
// The door never reads beyond the first message: what a client sends behind
// it stays in the kernel for whoever serves it next.
//
// Lifetime: the door and its waiting clients live on the event thread; a
// handed-over fd is no longer the door's (the event owns it until JS takes it).
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/acceptor.h"
#include "core/event_loop.h"

namespace tsmuxd::engine {

// Clients accepted but not yet handed over, at most.
constexpr size_t kDoorMaxWaiting = 256;
// How long a client may take to send its whole first message.
constexpr uint64_t kDoorWaitMs = 1000;
// A usbmuxd message, header included, is at most this long (the protocol's
// and the JS framer's MAX_MESSAGE_LENGTH).
constexpr uint32_t kDoorMaxMessage = 0x10000;
// The usbmuxd header: length, version, message type, tag (32 bits each, LE).
constexpr uint32_t kDoorHeaderSize = 16;

struct DoorArrival {
  int fd = -1;
  bool hasCredentials = false;
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  // The first message, whole, when `complete`; else what arrived of it.
  std::vector<uint8_t> bytes;
  bool complete = false;
  // Why an incomplete client was handed over (for JS's log line).
  const char* why = "";
};

class ClientDoor {
 public:
  using OnArrival = std::function<void(DoorArrival)>;

  // A listening Unix stream socket at `path` (the caller removed any stale
  // file); -1 with `error`.
  static int listenUnix(const std::string& path, int backlog, std::string& error);

  // Takes `listenFd`.
  ClientDoor(core::EventLoop& loop, int listenFd, OnArrival onArrival);
  ~ClientDoor();
  ClientDoor(const ClientDoor&) = delete;
  ClientDoor& operator=(const ClientDoor&) = delete;
  void close();
  size_t waiting() const { return waiting_.size(); }

 private:
  class Guest;
  void admit(int fd);
  void handOver(Guest& guest, const char* why);
  void drop(Guest& guest);

  core::EventLoop& loop_;
  core::Acceptor acceptor_;
  OnArrival onArrival_;
  bool closed_ = false;
  uint64_t nextGuest_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<Guest>> waiting_;
};

}  // namespace tsmuxd::engine
