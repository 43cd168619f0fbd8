#pragma once
// The sim's mux function without the mux: a measuring device for the lab's
// benchmark (`tsmuxd sim --ffs DIR --raw`, npm run bench:usb). It runs on the
// same FunctionFS transport, buffers and event thread as a mux session, so
// what a host measures through it is the ceiling of "the same sim's bulk
// pipe" that a daemon's figures are compared against.
//
// Protocol (all integers big-endian). While idle, every non-empty OUT
// transfer is a command of exactly 16 bytes:
//   0..3  "TRAW"
//   4     version, 1
//   5     mode: 1 SINK, 2 SOURCE, 3 ECHO
//   6..7  zero
//   8..15 N, the command's byte count, 1 .. kMaxCommandBytes
// SINK N:   the next N bytes of OUT transfers are counted and dropped; then
//           one 16-byte IN transfer answers: "TRAW", 1, the mode, 0, 0, N.
// SOURCE N: N bytes go IN in kPieceSize pieces (no ZLP between them, so a
//           host's IN transfers fill up completely across them; a ZLP
//           after the last piece when N ends on a packet boundary).
// ECHO N:   each OUT transfer comes back as one IN transfer (with its ZLP
//           when it ends on a packet boundary) until N bytes have.
// After each command the function is idle again. Zero-length OUT transfers
// (the ZLPs ending a host's transfers) carry nothing and are skipped. Any
// other input (a short or unknown command, a transfer running past N, OUT
// data during SOURCE) closes the transport with a log line; the next ENABLE
// (a replug or a new configuration) starts a fresh one.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/buffers.h"
#include "usb/transport.h"

namespace tsmuxd::testing {

class RawBulk : public usb::TransportHandler {
 public:
  static constexpr size_t kCommandSize = 16;
  static constexpr uint64_t kMaxCommandBytes = uint64_t(1) << 40;
  // The largest multiple of every bulk wMaxPacketSize (64, 512, 1024) below
  // the transport's largest IN transfer (65535): as few requests per byte
  // as the pipe allows, and no short packet between pieces, so a host's
  // 64 KiB IN transfers fill up across them.
  static constexpr size_t kPieceSize = 63 * 1024;
  enum class Mode : uint8_t { Idle = 0, Sink = 1, Source = 2, Echo = 3 };
  // level ("info", "error"...), text
  using Logger = std::function<void(const char*, std::string)>;

  RawBulk(std::unique_ptr<usb::Transport> transport, core::BufferPool& pool, Logger log);
  ~RawBulk() override;
  RawBulk(const RawBulk&) = delete;
  RawBulk& operator=(const RawBulk&) = delete;

  void onTransfer(const uint8_t* data, size_t len) override;
  void onTransferBatchEnd() override {}
  void onTransportDrained() override;
  void onTransportClosed(const Fault& why) override;

 private:
  void startCommand(const uint8_t* data, size_t len);
  void sink(size_t len);
  void echo(const uint8_t* data, size_t len);
  void fillSource();
  void finish();
  void refuse(const std::string& why);
  // Queues `len` bytes as IN pieces; a ZLP may follow only the last one.
  void sendPieces(const uint8_t* data, size_t len, bool endsTransfer);

  std::unique_ptr<usb::Transport> transport_;
  core::BufferPool& pool_;
  Logger log_;
  bool closed_ = false;
  Mode mode_ = Mode::Idle;
  uint64_t total_ = 0;  // N of the current command
  uint64_t done_ = 0;   // bytes counted, sent or echoed so far
  uint64_t commands_ = 0;
};

}  // namespace tsmuxd::testing
