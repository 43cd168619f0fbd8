#include "testing/raw_bulk.h"

#include <algorithm>
#include <cstring>

namespace tsmuxd::testing {

namespace {

constexpr uint8_t kMagic[4] = {'T', 'R', 'A', 'W'};
constexpr uint8_t kVersion = 1;
// What SOURCE sends: a recognisable byte, never stale pool memory.
constexpr uint8_t kSourceFill = 0xa5;

uint64_t readBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

void writeBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = uint8_t(v);
}

const char* modeName(RawBulk::Mode m) {
  switch (m) {
    case RawBulk::Mode::Sink: return "SINK";
    case RawBulk::Mode::Source: return "SOURCE";
    case RawBulk::Mode::Echo: return "ECHO";
    case RawBulk::Mode::Idle: return "idle";
  }
  return "?";
}

}  // namespace

RawBulk::RawBulk(std::unique_ptr<usb::Transport> transport, core::BufferPool& pool, Logger log)
    : transport_(std::move(transport)), pool_(pool), log_(std::move(log)) {
  transport_->setHandler(this);
  transport_->setReading(true);
}

RawBulk::~RawBulk() {
  transport_->setHandler(nullptr);
  transport_->close();
}

void RawBulk::onTransfer(const uint8_t* data, size_t len) {
  if (closed_ || len == 0) return;  // a ZLP ends a host transfer and carries nothing
  switch (mode_) {
    case Mode::Idle: startCommand(data, len); return;
    case Mode::Sink: sink(len); return;
    case Mode::Echo: echo(data, len); return;
    case Mode::Source:
      refuse("OUT data (" + std::to_string(len) + " bytes) during SOURCE");
      return;
  }
}

void RawBulk::startCommand(const uint8_t* data, size_t len) {
  if (len != kCommandSize) {
    refuse("a command is " + std::to_string(kCommandSize) + " bytes, got a transfer of " +
           std::to_string(len));
    return;
  }
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0 || data[4] != kVersion || data[6] || data[7]) {
    refuse("not a version 1 TRAW command");
    return;
  }
  uint8_t mode = data[5];
  if (mode < uint8_t(Mode::Sink) || mode > uint8_t(Mode::Echo)) {
    refuse("unknown mode " + std::to_string(mode));
    return;
  }
  uint64_t n = readBe64(data + 8);
  if (n == 0 || n > kMaxCommandBytes) {
    refuse("byte count " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxCommandBytes));
    return;
  }
  mode_ = Mode(mode);
  total_ = n;
  done_ = 0;
  ++commands_;
  if (mode_ == Mode::Source) fillSource();
}

void RawBulk::sink(size_t len) {
  if (len > total_ - done_) {
    refuse("SINK " + std::to_string(total_) + ": a transfer of " + std::to_string(len) +
           " bytes after " + std::to_string(done_) + " runs past the end");
    return;
  }
  done_ += len;
  if (done_ < total_) return;
  core::OutPacket answer(pool_, kCommandSize);
  uint8_t* p = answer.data();
  std::memcpy(p, kMagic, sizeof kMagic);
  p[4] = kVersion;
  p[5] = uint8_t(Mode::Sink);
  p[6] = p[7] = 0;
  writeBe64(p + 8, done_);
  transport_->send(std::move(answer), true);
  finish();
}

void RawBulk::echo(const uint8_t* data, size_t len) {
  if (len > total_ - done_) {
    refuse("ECHO " + std::to_string(total_) + ": a transfer of " + std::to_string(len) +
           " bytes after " + std::to_string(done_) + " runs past the end");
    return;
  }
  sendPieces(data, len, true);
  if (closed_) return;
  done_ += len;
  // The transport keeps our packets until the host reads them; a host that
  // writes and never reads must not grow that queue without bound.
  if (transport_->congested()) transport_->setReading(false);
  if (done_ == total_) finish();
}

void RawBulk::fillSource() {
  while (!closed_ && mode_ == Mode::Source && done_ < total_ && !transport_->congested()) {
    size_t n = size_t(std::min<uint64_t>(kPieceSize, total_ - done_));
    done_ += n;
    core::OutPacket piece(pool_, n);
    std::memset(piece.data(), kSourceFill, n);
    transport_->send(std::move(piece), done_ == total_);
  }
  if (!closed_ && mode_ == Mode::Source && done_ == total_) finish();
}

void RawBulk::sendPieces(const uint8_t* data, size_t len, bool endsTransfer) {
  for (size_t off = 0; off < len && !closed_;) {
    size_t n = std::min(kPieceSize, len - off);
    core::OutPacket piece(pool_, n);
    std::memcpy(piece.data(), data + off, n);
    off += n;
    transport_->send(std::move(piece), endsTransfer && off == len);
  }
}

void RawBulk::onTransportDrained() {
  if (closed_) return;
  if (mode_ == Mode::Source) fillSource();
  transport_->setReading(true);
}

void RawBulk::finish() {
  log_("debug", std::string("raw: ") + modeName(mode_) + " " + std::to_string(total_) +
                    " bytes done (command " + std::to_string(commands_) + ")");
  mode_ = Mode::Idle;
  total_ = done_ = 0;
}

void RawBulk::refuse(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  log_("error", "raw: " + why + "; closing until the next ENABLE");
  transport_->close();
}

void RawBulk::onTransportClosed(const Fault& why) {
  if (closed_) return;
  closed_ = true;
  log_(why.code == codes::kUnplugged ? "info" : "error",
       std::string("raw: the link closed during ") + modeName(mode_) + ": " + why.message);
}

}  // namespace tsmuxd::testing
