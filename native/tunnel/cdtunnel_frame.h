#pragma once
// The CDTunnel handshake frame, both directions, inside the TLS stream:
//   0  8  "CDTunnel"
//   8  2  body length, u16 big-endian
//  10  n  body: UTF-8 JSON
// (reference §1.2). JSON is JS's business; this only frames it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tsmuxd::tunnel {

// False (with `error`) when the body is over kMaxCdTunnelBody.
bool encodeCdTunnelFrame(const std::string& body, std::vector<uint8_t>& out, std::string& error);

// Reads one frame from a byte stream fed in pieces; bytes after the frame
// are left to the caller (the packets that follow).
class CdTunnelFrameReader {
 public:
  enum class Status { NeedMore, Done, Failed };
  // Takes bytes up to the end of the frame; `consumed` says how many.
  Status feed(const uint8_t* data, size_t len, size_t& consumed);
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  uint8_t header_[10] = {};
  size_t headerHave_ = 0;
  size_t bodyLength_ = 0;
  std::string body_;
  std::string error_;
  Status status_ = Status::NeedMore;
};

}  // namespace tsmuxd::tunnel
