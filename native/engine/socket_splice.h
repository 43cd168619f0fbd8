#pragma once
// Two connected sockets joined on the event thread: a usbmuxd client that
// Connected to a phone on the network, and the daemon's TCP connection to
// that phone. Bytes go both ways through one bounded buffer per direction
// (kSpliceBufferBytes) and never enter JS. Backpressure is the kernel's: a
// direction whose buffer is full stops reading its source until the other
// socket takes bytes, so a client that stops reading stops the phone and
// the other way round. A half-close is passed on (shutdown(SHUT_WR) once a
// direction's source said EOF and its buffer is empty); the splice ends when
// both directions have, or at the first error on either socket.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.h"

namespace tsmuxd::engine {

// Per direction: what one splice may hold of bytes read and not yet written.
constexpr size_t kSpliceBufferBytes = 256 * 1024;
// Bytes read or written per socket per turn before the others get theirs.
constexpr size_t kSpliceBytesPerTurn = 1024 * 1024;
// Bytes handed over with the fds (what node had already read): bounded by
// what JS may hold of a client's request read, and a phone's first words.
constexpr size_t kSpliceMaxEarlyBytes = 256 * 1024;

class SocketSplice : public core::Deferred {
 public:
  // Called once, on the event thread, when the splice is over.
  using Done = std::function<void(SocketSplice&, const std::string& reason)>;

  // Takes both fds (non-blocking, ours). `toPhone` goes to the phone ahead of
  // anything read from the client; `toClient` goes to the client first
  // (a Connect's Result, then what the phone already said).
  SocketSplice(core::EventLoop& loop, uint32_t id, int clientFd, int phoneFd, std::vector<uint8_t> toPhone,
               std::vector<uint8_t> toClient, Done done);
  ~SocketSplice() override;

  uint32_t id() const { return id_; }
  uint64_t bytesFromClient() const { return up_.moved; }
  uint64_t bytesToClient() const { return down_.moved; }
  // Ends it now (JS asked, or the engine stops); `done` is not called.
  void close();

  void runDeferred() override;

 private:
  struct End : core::Pollable {
    End(SocketSplice& s, int f) : splice(s), fd(f) {}
    ~End() override;
    void onPoll(uint32_t events) override;
    SocketSplice& splice;
    int fd;
    bool readable = true;  // edge-triggered: try once, EAGAIN clears it
    bool writable = true;
    bool eof = false;      // read returned 0
    bool shutWritten = false;
  };
  // A ring buffer from one end to the other.
  struct Direction {
    End* from = nullptr;
    End* to = nullptr;
    std::vector<uint8_t> ring;
    size_t head = 0;  // next byte to write
    size_t size = 0;  // bytes held
    uint64_t moved = 0;
    bool finished = false;  // EOF passed on
  };

  void pump();
  // False when the splice ended (error).
  bool flush(Direction& d, size_t& budget);
  bool fill(Direction& d, size_t& budget);
  void preload(Direction& d, std::vector<uint8_t> bytes);
  void fail(const std::string& reason);
  void finish(const std::string& reason);

  core::EventLoop& loop_;
  uint32_t id_;
  std::unique_ptr<End> client_;
  std::unique_ptr<End> phone_;
  Direction up_;    // client -> phone
  Direction down_;  // phone -> client
  Done done_;
  bool over_ = false;
};

}  // namespace tsmuxd::engine
