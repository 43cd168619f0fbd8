#include "tunnel/cdtunnel_frame.h"

#include <algorithm>
#include <cstring>

#include "tunnel/limits.h"

namespace tsmuxd::tunnel {

bool encodeCdTunnelFrame(const std::string& body, std::vector<uint8_t>& out, std::string& error) {
  if (body.size() > kMaxCdTunnelBody) {
    error = "CDTunnel body of " + std::to_string(body.size()) + " bytes is over the " +
            std::to_string(kMaxCdTunnelBody) + "-byte limit";
    return false;
  }
  out.resize(kCdTunnelHeaderSize + body.size());
  std::memcpy(out.data(), kCdTunnelMagic, sizeof kCdTunnelMagic);
  out[8] = uint8_t(body.size() >> 8);
  out[9] = uint8_t(body.size());
  std::memcpy(out.data() + kCdTunnelHeaderSize, body.data(), body.size());
  return true;
}

CdTunnelFrameReader::Status CdTunnelFrameReader::feed(const uint8_t* data, size_t len, size_t& consumed) {
  consumed = 0;
  if (status_ != Status::NeedMore) return status_;
  if (headerHave_ < kCdTunnelHeaderSize) {
    size_t take = std::min(len, kCdTunnelHeaderSize - headerHave_);
    std::memcpy(header_ + headerHave_, data, take);
    headerHave_ += take;
    consumed += take;
    // The magic is checked as soon as its bytes are in, so a peer that
    // speaks something else is told at once rather than after 10 bytes.
    size_t magicHave = std::min(headerHave_, sizeof kCdTunnelMagic);
    if (std::memcmp(header_, kCdTunnelMagic, magicHave) != 0) {
      error_ = "the handshake frame does not start with \"CDTunnel\"";
      return status_ = Status::Failed;
    }
    if (headerHave_ < kCdTunnelHeaderSize) return status_;
    bodyLength_ = (size_t(header_[8]) << 8) | header_[9];
    if (bodyLength_ > kMaxCdTunnelBody) {
      error_ = "CDTunnel body length " + std::to_string(bodyLength_) + " is over the " +
               std::to_string(kMaxCdTunnelBody) + "-byte limit";
      return status_ = Status::Failed;
    }
    body_.reserve(bodyLength_);
  }
  size_t take = std::min(len - consumed, bodyLength_ - body_.size());
  body_.append(reinterpret_cast<const char*>(data + consumed), take);
  consumed += take;
  if (body_.size() == bodyLength_) status_ = Status::Done;
  return status_;
}

}  // namespace tsmuxd::tunnel
