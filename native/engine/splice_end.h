#pragma once
// One socket of a SocketSplice: plain, or TLS over it (a remote usbmux
// connection, docs/remote.md). The splice moves bytes through readv/writev
// and never looks at the records: with TLS, ciphertext comes off the socket
// into the channel KiB by KiB (kTlsReadChunk at a time, decrypted before the
// next is read) and what the channel encrypts waits in one bounded buffer
// (kTlsCipherOut) before the socket takes it, so a TLS end holds no more than
// a plain one's ring plus those two.
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/event_loop.h"
#include "tunnel/tls_channel.h"

namespace tsmuxd::engine {

// Ciphertext read from the socket per step (one or more records); nothing
// more is read until the channel has decrypted it.
constexpr size_t kTlsReadChunk = 64 * 1024;
// Ciphertext made and not yet taken by the socket; plaintext is encrypted
// only while this has room.
constexpr size_t kTlsCipherOut = 256 * 1024;
// Plaintext encrypted per write (four full records).
constexpr size_t kTlsWriteChunk = 64 * 1024;

class SpliceEnd : public core::Pollable {
 public:
  static constexpr ssize_t kWouldBlock = -1;
  static constexpr ssize_t kFailed = -2;

  // Takes `fd`; `wake` runs on every readiness edge. `tls` may be null.
  SpliceEnd(int fd, std::unique_ptr<tunnel::TlsChannel> tls, core::Deferred* wake, core::EventLoop& loop);
  ~SpliceEnd() override;
  SpliceEnd(const SpliceEnd&) = delete;
  SpliceEnd& operator=(const SpliceEnd&) = delete;

  void onPoll(uint32_t events) override;
  // Out of the epoll set and closed (idempotent).
  void close();
  int fd() const { return fd_; }
  bool tls() const { return tls_ != nullptr; }

  // TLS: runs the handshake as far as the socket allows. 1 done (or plain),
  // 0 waiting for the peer, -1 failed (error()).
  int handshake();
  // > 0 bytes, 0 at EOF (FIN, or close_notify), kWouldBlock, kFailed (error()).
  ssize_t readv(const struct iovec* iov, int count);
  ssize_t writev(const struct iovec* iov, int count);
  // Sends what TLS has made so far; false on failure (error()).
  bool flushCipher();
  // Our writing side ends once everything before it is out (close_notify
  // first with TLS): 1 done, 0 not yet, -1 failed.
  int shutWrite();
  bool hasPendingCipher() const { return cipherSize_ > 0 || (tls_ && tls_->pendingOutput() > 0); }
  const std::string& error() const { return error_; }
  // "TLSv1.3 ..., peer /CN=..." (TLS ends, after the handshake).
  std::string describeTls() const;

  bool readable = true;  // edge-triggered: try once, EAGAIN clears it
  bool writable = true;
  bool eof = false;      // the peer's direction ended
  bool shutWritten = false;

 private:
  ssize_t readTls(uint8_t* out, size_t cap);
  // One recv of ciphertext into the channel: > 0, 0 (FIN), kWouldBlock, kFailed.
  ssize_t pullCipher();
  ssize_t fail(const std::string& what);

  int fd_;
  std::unique_ptr<tunnel::TlsChannel> tls_;
  core::Deferred* wake_;
  core::EventLoop& loop_;
  bool secure_ = false;
  bool closeNotifySent_ = false;
  bool cipherEof_ = false;  // TCP FIN under TLS
  std::vector<uint8_t> cipherIn_;
  std::vector<uint8_t> cipherOut_;
  size_t cipherHead_ = 0;
  size_t cipherSize_ = 0;
  std::string error_;
};

}  // namespace tsmuxd::engine
