#pragma once
// Two connected sockets joined on the event thread: a usbmuxd client and the
// daemon's TCP connection to a phone on the network (docs/wifi.md) or to a
// remote usbmux host (docs/remote.md, where the far end speaks TLS). Bytes
// go both ways through one bounded buffer per direction (kSpliceBufferBytes)
// and never enter JS. Backpressure is the kernel's: a direction whose buffer
// is full stops reading its source until the other socket takes bytes, so a
// client that stops reading stops the phone and the other way round. A
// half-close is passed on (shutdown(SHUT_WR), after close_notify with TLS,
// once a direction's source said EOF and its buffer is empty); the splice
// ends when both directions have, or at the first error on the client's
// socket. When the far end fails or is let go (farGone(): its remote host
// was lost), what was read from it still reaches the client, then the
// client's EOF; what the client sends from then is read and dropped until it
// closes (at most kFarGoneDrainMs), so it reads EOF rather than ECONNRESET,
// as after an unplug.
//
// Two more shapes for remote usbmux:
// - dial: no client yet. The far end's TLS handshake runs, `toFar` (a
//   Connect request) goes out, and the first usbmuxd message back (at most
//   kSpliceMaxReply bytes) is handed to `onReply` instead of a client; the
//   splice then waits for attachClient() (JS answered its client) or close().
// - serve: the client end is one half of a socketpair whose other half the
//   usbmuxd server reads as a client, and the far end is a remote client's
//   TLS; `onSecure` says who it is once the handshake is done.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "engine/splice_end.h"

namespace tsmuxd::engine {

// Per direction: what one splice may hold of bytes read and not yet written.
constexpr size_t kSpliceBufferBytes = 256 * 1024;
// Bytes read or written per socket per turn before the others get theirs.
constexpr size_t kSpliceBytesPerTurn = 1024 * 1024;
// Bytes handed over with the fds (what node had already read): bounded by
// what JS may hold of a client's request read, and a phone's first words.
constexpr size_t kSpliceMaxEarlyBytes = 256 * 1024;
// A dialled remote's answer to the Connect: a usbmuxd header and a plist
// Result (libusbmuxd's and usbfluxd's reply buffer is 64 KiB).
constexpr size_t kSpliceMaxReply = 64 * 1024;
// After the far end is gone: how long the client gets to close its end.
constexpr uint64_t kFarGoneDrainMs = 30'000;
// A remote usbmuxd message header.
constexpr size_t kUsbmuxHeaderBytes = 16;

class SocketSplice : public core::Deferred {
 public:
  // Called once, on the event thread, when the splice is over.
  using Done = std::function<void(SocketSplice&, const std::string& reason)>;
  // Dial: the remote's whole first message (header included).
  using Reply = std::function<void(SocketSplice&, std::vector<uint8_t> message)>;
  // TLS: the handshake is done; describeTls() of the far end.
  using Secure = std::function<void(SocketSplice&, const std::string& description)>;

  struct Far {
    int fd = -1;
    std::unique_ptr<tunnel::TlsChannel> tls;  // null: plain TCP
  };

  // Takes both fds (non-blocking, ours). `clientFd` -1 dials (see above).
  // `toFar` goes to the far end ahead of anything read from the client;
  // `toClient` goes to the client first.
  SocketSplice(core::EventLoop& loop, uint32_t id, int clientFd, Far far, std::vector<uint8_t> toFar,
               std::vector<uint8_t> toClient, Done done, Reply onReply = nullptr, Secure onSecure = nullptr);
  ~SocketSplice() override;

  uint32_t id() const { return id_; }
  uint64_t bytesFromClient() const { return up_.moved; }
  uint64_t bytesToClient() const { return down_.moved; }
  // A dialled splice after its reply: the client's fd and what it sent
  // early; false (the fd not taken) when it is not waiting for one.
  bool attachClient(int clientFd, std::vector<uint8_t> toFar);
  // Ends it now (JS asked, or the engine stops); `done` is not called.
  void close();
  // The far end is lost (its host is gone): closed now, the client gets
  // what was read and EOF, and `done` says `reason` once the client closes.
  void farGone(const std::string& reason);

  void runDeferred() override;

 private:
  // A ring buffer from one end to the other.
  struct Direction {
    SpliceEnd* from = nullptr;
    SpliceEnd* to = nullptr;
    std::vector<uint8_t> ring;
    size_t head = 0;  // next byte to write
    size_t size = 0;  // bytes held
    uint64_t moved = 0;
    bool finished = false;  // EOF passed on
  };
  enum class Stage { Handshake, AwaitReply, AwaitClient, Open };

  void pump();
  // False when the splice ended (error).
  bool flush(Direction& d, size_t& budget);
  bool fill(Direction& d, size_t& budget);
  // Dial: reads the remote's first message; false when the splice ended.
  bool readReply();
  void preload(Direction& d, std::vector<uint8_t> bytes);
  void fail(const SpliceEnd& end, const char* what);
  void finish(const std::string& reason);
  const char* farName() const;

  core::EventLoop& loop_;
  uint32_t id_;
  std::unique_ptr<SpliceEnd> client_;
  std::unique_ptr<SpliceEnd> far_;
  Direction up_;    // client -> far
  Direction down_;  // far -> client
  Done done_;
  Reply onReply_;
  Secure onSecure_;
  Stage stage_ = Stage::Handshake;
  std::vector<uint8_t> reply_;
  bool over_ = false;
  bool farGone_ = false;
  std::string goneReason_;
  core::EventLoop::TimerId drainTimer_ = 0;
};

}  // namespace tsmuxd::engine
