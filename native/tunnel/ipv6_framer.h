#pragma once
// Cuts the tunnel's plaintext stream into IPv6 packets. The stream carries
// bare packets back to back; each is delimited only by its 40-byte header's
// payload length (reference §1.3). A stream read is never taken for a packet
// (go-ios #748 corrupted traffic that way).
//
// TLS decrypts straight into this buffer (writable()/commit()), whole
// packets are handed on from where they lie, and only a partial packet at
// the end is moved to the front.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tunnel/limits.h"

namespace tsmuxd::tunnel {

class Ipv6Framer {
 public:
  Ipv6Framer() : buffer_(kMaxIpv6Packet + kPlainChunk) {}

  // Room to decrypt into (never 0 while no error).
  uint8_t* writable(size_t& room) {
    room = buffer_.size() - end_;
    return buffer_.data() + end_;
  }
  void commit(size_t n) { end_ += n; }

  // Calls sink(packet, length) for each whole packet. False, with error(),
  // when the stream is not IPv6: the tunnel cannot find the next packet.
  template <class Sink>
  bool drain(Sink&& sink) {
    size_t at = 0;
    while (end_ - at >= kIpv6HeaderSize) {
      const uint8_t* p = buffer_.data() + at;
      if ((p[0] >> 4) != 6) {
        error_ = "not an IPv6 packet (version " + std::to_string(p[0] >> 4) + ") after " +
                 std::to_string(packets_) + " packets";
        return false;
      }
      size_t total = kIpv6HeaderSize + ((size_t(p[4]) << 8) | p[5]);
      if (end_ - at < total) break;
      ++packets_;
      sink(p, total);
      at += total;
    }
    // Keep the partial packet; the buffer always has room for a whole one
    // behind it (kMaxIpv6Packet + kPlainChunk).
    if (at > 0) {
      std::copy(buffer_.begin() + long(at), buffer_.begin() + long(end_), buffer_.begin());
      end_ -= at;
    }
    return true;
  }

  size_t buffered() const { return end_; }
  const std::string& error() const { return error_; }

 private:
  std::vector<uint8_t> buffer_;
  size_t end_ = 0;
  uint64_t packets_ = 0;
  std::string error_;
};

}  // namespace tsmuxd::tunnel
