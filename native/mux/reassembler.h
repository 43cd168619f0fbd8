#pragma once
// Two ways to cut USB transfers into mux packets.
//
// StreamReassembler is the host's: it treats the IN direction as one byte
// stream framed by the length at offset 4, so transfers that were split (e.g.
// at 4096 bytes under VirtualBox), merged (usbip) or laced with stray ZLPs all
// parse. Host-side USB offers no stronger framing guarantee.
//
// MessageAssembler is the phone's: a message ends with a short transfer or a
// ZLP, exactly as a USB device controller ends a read. A host that forgets the
// ZLP after a multiple of wMaxPacketSize gets its packets glued together, and
// the phone rejects the result.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/fault.h"
#include "mux/frame.h"

namespace tsmuxd::mux {

class StreamReassembler {
 public:
  explicit StreamReassembler(size_t maxPacket = kMaxPacketLength) : maxPacket_(maxPacket) {}

  // The header size may change between packets (VERSION is v1-framed, the rest
  // v2), so the sink can call this while a feed is in progress.
  void setHeaderSize(size_t size) { headerSize_ = size; }
  size_t pendingBytes() const { return pending_.size(); }

  // Feeds one transfer. `sink(ptr, len, inTransfer)` gets each whole packet
  // and returns false to stop early (the device went away); `inTransfer` says
  // the bytes lie in the caller's transfer (valid as long as it is), not in
  // our reassembly buffer (valid only during the call). Returns false with `fault` set
  // on malformed input; the stream is then unusable.
  template <typename Sink>
  bool feed(const uint8_t* data, size_t len, Sink&& sink, Fault& fault);

 private:
  bool frameLength(const uint8_t* header, uint32_t& length, Fault& fault) const;

  size_t maxPacket_;
  size_t headerSize_ = kHeaderSizeV1;
  std::vector<uint8_t> pending_;
};

class MessageAssembler {
 public:
  explicit MessageAssembler(uint16_t maxPacketSize, size_t maxMessage = kMaxPacketLength)
      : maxPacketSize_(maxPacketSize ? maxPacketSize : 512), maxMessage_(maxMessage) {}

  // Feeds one transfer. `onMessage(ptr, len, inTransfer)` gets each complete
  // message (`inTransfer` as for StreamReassembler); `onFault(fault)` hears
  // about a message that was dropped.
  template <typename OnMessage, typename OnFault>
  void feed(const uint8_t* data, size_t len, OnMessage&& onMessage, OnFault&& onFault);

  // The caller's transfers are about to be reused: copy what is still held.
  void batchEnd();

 private:
  uint16_t maxPacketSize_;
  size_t maxMessage_;
  // A message's first transfer, held where it lies until its ZLP comes (the
  // usual shape: one full-size transfer, then a ZLP), so it is not copied.
  const uint8_t* held_ = nullptr;
  size_t heldLen_ = 0;
  std::vector<uint8_t> buf_;
  size_t overflowBytes_ = 0;  // non-zero while discarding an oversized message
};

// ---- implementation ----

inline bool StreamReassembler::frameLength(const uint8_t* header, uint32_t& length,
                                           Fault& fault) const {
  uint32_t protocol = getBe32(header);
  length = getBe32(header + 4);
  fault = checkHeader(protocol, length, headerSize_);
  if (!fault && length > maxPacket_) {
    fault = Fault(codes::kBadLength, "mux packet length exceeds the reassembly limit");
  }
  return !fault;
}

template <typename Sink>
bool StreamReassembler::feed(const uint8_t* data, size_t len, Sink&& sink, Fault& fault) {
  constexpr size_t kLengthEnd = 8;  // protocol and length come first in every version
  while (len > 0) {
    if (!pending_.empty()) {
      if (pending_.size() < kLengthEnd) {
        size_t take = std::min(kLengthEnd - pending_.size(), len);
        pending_.insert(pending_.end(), data, data + take);
        data += take;
        len -= take;
        if (pending_.size() < kLengthEnd) return true;
      }
      uint32_t length = 0;
      if (!frameLength(pending_.data(), length, fault)) return false;
      size_t take = std::min(size_t(length) - pending_.size(), len);
      pending_.insert(pending_.end(), data, data + take);
      data += take;
      len -= take;
      if (pending_.size() < length) return true;
      // The sink never feeds us again, so the buffer can be reused in place.
      bool go = sink(pending_.data(), pending_.size(), false);
      pending_.clear();
      if (!go) return true;
      continue;
    }
    if (len < kLengthEnd) {
      pending_.assign(data, data + len);
      return true;
    }
    uint32_t length = 0;
    if (!frameLength(data, length, fault)) return false;
    if (len < length) {
      pending_.reserve(length);
      pending_.assign(data, data + len);
      return true;
    }
    if (!sink(data, size_t(length), true)) return true;
    data += length;
    len -= length;
  }
  return true;
}

template <typename OnMessage, typename OnFault>
void MessageAssembler::feed(const uint8_t* data, size_t len, OnMessage&& onMessage,
                            OnFault&& onFault) {
  bool ends = len == 0 || len % maxPacketSize_ != 0;
  if (overflowBytes_ == 0 && buf_.empty() && !held_) {
    if (len == 0) return;  // a ZLP with nothing before it: an empty read
    if (len <= maxMessage_ && ends) {
      onMessage(data, len, true);
      return;
    }
    if (len <= maxMessage_) {
      held_ = data;
      heldLen_ = len;
      return;
    }
  } else if (held_) {
    const uint8_t* p = held_;
    size_t n = heldLen_;
    held_ = nullptr;
    if (len == 0) {
      onMessage(p, n, true);
      return;
    }
    buf_.assign(p, p + n);  // a second transfer joins: copy after all
  }
  if (overflowBytes_ > 0) {
    overflowBytes_ += len;
  } else if (buf_.size() + len > maxMessage_) {
    overflowBytes_ = buf_.size() + len;
    buf_.clear();
    buf_.shrink_to_fit();
  } else {
    buf_.insert(buf_.end(), data, data + len);
  }
  if (!ends) return;
  if (overflowBytes_ > 0) {
    onFault(Fault(codes::kMessageTooLarge, "message was too large (" +
                                               std::to_string(overflowBytes_) +
                                               " bytes, max = " + std::to_string(maxMessage_) + ")"));
    overflowBytes_ = 0;
    return;
  }
  if (!buf_.empty()) onMessage(buf_.data(), buf_.size(), false);
  buf_.clear();
}

inline void MessageAssembler::batchEnd() {
  if (!held_) return;
  buf_.assign(held_, held_ + heldLen_);
  held_ = nullptr;
}

}  // namespace tsmuxd::mux
