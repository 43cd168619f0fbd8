// Fuzzes the tunnel's plaintext stream as the host reads it after TLS
// (native/tunnel/cdtunnel_frame.* and ipv6_framer.h): the CDTunnel handshake
// frame, then bare IPv6 packets back to back. The harness plays
// Tunnel::takeFrame and Tunnel::processInput line for line, over a fake TLS
// channel whose records are cut where the input says, and compares what they
// find with a one-shot reference parse of the whole stream.
//
// Input: [config][cut count][u16 per cut][stream bytes...]
//   config bits 0-5: the part of the stream after the frame is repeated
//   1 + that many times (so packets near 64 KiB, and a framer buffer near
//   full, are reachable from a 4 KiB input); bit 6: the tunnel is configured
//   a turn after the frame is done, not in the same turn.
//   Per cut: the low 14 bits + 1 are one TLS record's length (SSL_read never
//   returns bytes of two records at once); bit 15 ends the turn after it (the
//   rest arrives later). The cuts repeat until the stream is used up; with
//   none, records are 16 KiB, all in one turn.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "tunnel/cdtunnel_frame.h"
#include "tunnel/ipv6_framer.h"
#include "tunnel/limits.h"

using namespace tsmuxd;
using namespace tsmuxd::tunnel;

namespace {

using Bytes = std::vector<uint8_t>;
using Status = CdTunnelFrameReader::Status;

constexpr size_t kMaxRecord = 16384;  // TLS's largest plaintext record

struct Record {
  size_t offset;
  size_t len;
  bool endsTurn;
};

// TLS as Tunnel sees it: read() returns at most the rest of one record, and
// 0 when this turn's records are used up.
class FakeTls {
 public:
  FakeTls(const Bytes& stream, const std::vector<Record>& records) : s_(stream), r_(records) {}

  long read(uint8_t* out, size_t cap) {
    if (next_ >= r_.size() || turnOver_) return 0;
    const Record& rec = r_[next_];
    size_t n = std::min(cap, rec.len - used_);
    FUZZ_CHECK(n > 0, "read() with no room (cap %zu)", cap);
    std::memcpy(out, s_.data() + rec.offset + used_, n);
    used_ += n;
    delivered_ += n;
    if (used_ == rec.len) {
      used_ = 0;
      ++next_;
      turnOver_ = rec.endsTurn;
    }
    return long(n);
  }
  void nextTurn() { turnOver_ = false; }
  bool exhausted() const { return next_ >= r_.size(); }
  size_t delivered() const { return delivered_; }

 private:
  const Bytes& s_;
  const std::vector<Record>& r_;
  size_t next_ = 0;
  size_t used_ = 0;
  size_t delivered_ = 0;
  bool turnOver_ = false;
};

// What a one-shot parse of the whole stream finds.
struct Reference {
  Status frame = Status::NeedMore;
  size_t frameEnd = 0;            // where the packets start (when Done)
  std::vector<size_t> packets;    // offsets into the stream
  std::vector<size_t> lengths;
  bool framerFails = false;
  size_t leftover = 0;            // a partial packet at the end
};

Reference reference(const Bytes& s) {
  Reference r;
  if (s.empty()) return r;
  size_t magic = std::min(s.size(), sizeof kCdTunnelMagic);
  if (std::memcmp(s.data(), kCdTunnelMagic, magic) != 0) {
    r.frame = Status::Failed;
    return r;
  }
  if (s.size() < kCdTunnelHeaderSize) return r;
  size_t body = (size_t(s[8]) << 8) | s[9];
  if (body > kMaxCdTunnelBody) {
    r.frame = Status::Failed;
    return r;
  }
  if (s.size() < kCdTunnelHeaderSize + body) return r;
  r.frame = Status::Done;
  r.frameEnd = kCdTunnelHeaderSize + body;
  size_t at = r.frameEnd;
  while (s.size() - at >= kIpv6HeaderSize) {
    if ((s[at] >> 4) != 6) {
      r.framerFails = true;
      return r;
    }
    size_t total = kIpv6HeaderSize + ((size_t(s[at + 4]) << 8) | s[at + 5]);
    if (s.size() - at < total) break;
    r.packets.push_back(at);
    r.lengths.push_back(total);
    at += total;
  }
  r.leftover = s.size() - at;
  return r;
}

// Tunnel's input side, from the TLS read on.
class Host {
 public:
  Host(const Bytes& stream, FakeTls& tls, const Reference& ref, bool configureLater)
      : s_(stream), tls_(tls), ref_(ref), configureLater_(configureLater) {}

  // One runDeferred(): processInput() with the tunnel in its current state.
  void turn() {
    if (state_ == State::AwaitConfig) state_ = State::Running;  // configure() came
    if (state_ == State::AwaitFrame) takeFrame();
    if (state_ == State::AwaitConfig && !configureLater_) state_ = State::Running;
    if (state_ != State::Running) return;
    if (!drain()) return;
    for (;;) {
      size_t room = 0;
      uint8_t* at = framer_.writable(room);
      FUZZ_CHECK(room > 0, "the framer has no room with %zu bytes buffered", framer_.buffered());
      long n = tls_.read(at, room);
      if (n == 0) break;
      FUZZ_CHECK(size_t(n) <= room, "read %ld bytes into %zu", n, room);
      framer_.commit(size_t(n));
      checkBuffered();
      if (!drain()) return;
    }
  }

  bool closed() const { return state_ == State::Closed; }

  void finish() {
    // The whole stream has been offered: the outcome is the reference's.
    FUZZ_CHECK(frameStatus_ == ref_.frame, "frame status %d, the reference says %d", int(frameStatus_),
               int(ref_.frame));
    if (frameStatus_ == Status::Failed) {
      FUZZ_CHECK(!frame_.error().empty(), "a failed frame without an error");
      // Sticky: nothing more is taken, and the status stays.
      size_t consumed = 1;
      uint8_t more[16] = {'C', 'D', 'T', 'u', 'n', 'n', 'e', 'l', 0, 0, 6};
      std::string error = frame_.error();
      FUZZ_CHECK(frame_.feed(more, sizeof more, consumed) == Status::Failed, "Failed is not sticky");
      FUZZ_CHECK(consumed == 0, "a failed reader took %zu more bytes", consumed);
      FUZZ_CHECK(frame_.error() == error, "the error changed after failing");
      return;
    }
    if (frameStatus_ != Status::Done) return;
    size_t consumed = 1;
    uint8_t more[4] = {0x60, 0, 0, 0};
    FUZZ_CHECK(frame_.feed(more, sizeof more, consumed) == Status::Done && consumed == 0,
               "a done reader took %zu more bytes", consumed);
    FUZZ_CHECK(state_ == State::Running || failed_, "the tunnel never ran after its frame");
    FUZZ_CHECK(failed_ == ref_.framerFails, "framer failed=%d, the reference says %d", int(failed_),
               int(ref_.framerFails));
    FUZZ_CHECK(packets_ == ref_.packets.size(), "%zu packets drained, the reference finds %zu", packets_,
               ref_.packets.size());
    if (failed_) {
      FUZZ_CHECK(!framer_.error().empty(), "a failed framer without an error");
      // Failing again the same way (Tunnel stops at the first).
      FUZZ_CHECK(!framer_.drain([](const uint8_t*, size_t) {}), "the framer failure is not sticky");
    } else {
      FUZZ_CHECK(framer_.buffered() == ref_.leftover, "%zu bytes left buffered, the reference has %zu",
                 framer_.buffered(), ref_.leftover);
    }
  }

 private:
  enum class State { AwaitFrame, AwaitConfig, Running, Closed };

  // Tunnel::takeFrame.
  void takeFrame() {
    uint8_t buffer[4096];
    for (;;) {
      long n = tls_.read(buffer, sizeof buffer);
      if (n == 0) return;
      size_t used = 0;
      size_t before = frameTaken_;
      Status status = frame_.feed(buffer, size_t(n), used);
      FUZZ_CHECK(used <= size_t(n), "the frame reader consumed %zu of %ld bytes", used, n);
      frameTaken_ += used;
      frameStatus_ = status;
      if (status == Status::Failed) {
        state_ = State::Closed;
        return;
      }
      if (status == Status::NeedMore) {
        FUZZ_CHECK(used == size_t(n), "NeedMore after taking %zu of %ld bytes", used, n);
        continue;
      }
      // Done: the body is the bytes after the header, and the reader stopped
      // exactly at the frame's end.
      const std::string& body = frame_.body();
      FUZZ_CHECK(body.size() <= kMaxCdTunnelBody, "a %zu-byte body", body.size());
      FUZZ_CHECK(frameTaken_ == kCdTunnelHeaderSize + body.size(),
                 "the frame ended after %zu bytes with a %zu-byte body (%zu before this read)", frameTaken_,
                 body.size(), before);
      FUZZ_CHECK(body.empty() || std::memcmp(body.data(), s_.data() + kCdTunnelHeaderSize, body.size()) == 0,
                 "the body is not the bytes after the header");
      size_t rest = size_t(n) - used;
      size_t room = 0;
      uint8_t* at = framer_.writable(room);
      FUZZ_CHECK(rest <= room, "%zu bytes after the frame, room for %zu", rest, room);
      if (rest) std::memcpy(at, buffer + used, rest);
      framer_.commit(rest);
      checkBuffered();
      state_ = State::AwaitConfig;
      return;
    }
  }

  bool drain() {
    auto sink = [this](const uint8_t* p, size_t len) {
      FUZZ_CHECK(len >= kIpv6HeaderSize, "a %zu-byte packet", len);
      FUZZ_CHECK((p[0] >> 4) == 6, "a packet of version %u", p[0] >> 4);
      size_t payload = (size_t(p[4]) << 8) | p[5];
      FUZZ_CHECK(len == kIpv6HeaderSize + payload, "a %zu-byte packet with payload length %zu", len, payload);
      FUZZ_CHECK(packets_ < ref_.packets.size(), "packet %zu, the reference has %zu", packets_,
                 ref_.packets.size());
      FUZZ_CHECK(len == ref_.lengths[packets_], "packet %zu is %zu bytes, the reference's %zu", packets_, len,
                 ref_.lengths[packets_]);
      FUZZ_CHECK(std::memcmp(p, s_.data() + ref_.packets[packets_], len) == 0,
                 "packet %zu differs from the stream at offset %zu", packets_, ref_.packets[packets_]);
      ++packets_;
    };
    if (!framer_.drain(sink)) {
      failed_ = true;
      state_ = State::Closed;
      return false;
    }
    checkBuffered();
    return true;
  }

  void checkBuffered() {
    FUZZ_CHECK(framer_.buffered() <= kMaxIpv6Packet + kPlainChunk, "%zu bytes buffered", framer_.buffered());
  }

  const Bytes& s_;
  FakeTls& tls_;
  const Reference& ref_;
  bool configureLater_;
  State state_ = State::AwaitFrame;
  CdTunnelFrameReader frame_;
  Status frameStatus_ = Status::NeedMore;
  size_t frameTaken_ = 0;
  Ipv6Framer framer_;
  size_t packets_ = 0;
  bool failed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  uint8_t config = in.u8();
  unsigned cutCount = in.u8() % 33;
  std::vector<uint16_t> cuts;
  for (unsigned i = 0; i < cutCount; ++i) cuts.push_back(in.u16());
  size_t len = in.remaining();
  const uint8_t* tail = in.bytes(len);
  Bytes stream(tail, tail + len);

  // Repeat what follows a complete frame header and body.
  unsigned copies = 1 + (config & 0x3f);
  if (copies > 1 && stream.size() >= kCdTunnelHeaderSize &&
      std::memcmp(stream.data(), kCdTunnelMagic, sizeof kCdTunnelMagic) == 0) {
    size_t frameEnd = kCdTunnelHeaderSize + ((size_t(stream[8]) << 8) | stream[9]);
    if (frameEnd < stream.size()) {
      Bytes packets(stream.begin() + long(frameEnd), stream.end());
      for (unsigned i = 1; i < copies; ++i) stream.insert(stream.end(), packets.begin(), packets.end());
    }
  }

  std::vector<Record> records;
  for (size_t at = 0, i = 0; at < stream.size(); ++i) {
    size_t want = kMaxRecord;
    bool endsTurn = false;
    if (!cuts.empty()) {
      uint16_t c = cuts[i % cuts.size()];
      want = size_t(c & 0x3fff) + 1;
      endsTurn = (c & 0x8000) != 0;
    }
    size_t n = std::min(want, stream.size() - at);
    records.push_back({at, n, endsTurn});
    at += n;
  }

  Reference ref = reference(stream);
  FakeTls tls(stream, records);
  Host host(stream, tls, ref, (config & 0x40) != 0);
  do {
    host.turn();
    tls.nextTurn();
  } while (!tls.exhausted() && !host.closed());
  host.turn();  // a configure() that waited for the next turn, with nothing new
  FUZZ_CHECK(tls.delivered() <= stream.size(), "delivered %zu of %zu bytes", tls.delivered(), stream.size());
  host.finish();
  return 0;
}
