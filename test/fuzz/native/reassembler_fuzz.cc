// Fuzzes both framers in native/mux/reassembler.h against a plain reference.
//
// StreamReassembler must find the same packets however the stream is cut
// into transfers, and fail exactly where the reference first meets a header
// it cannot trust. MessageAssembler must end messages exactly at short
// transfers and ZLPs, and must copy a held transfer before the batch ends:
// each transfer lives in its own heap block, freed at the end of its batch,
// so a pointer kept too long is an ASan report.
//
// Input: [config][transfer count][u16 per transfer][stream bytes...]
//   config bits 0-1: the framers' size limit; 2-3: wMaxPacketSize;
//   4-6: the stream sink stops after that many packets (0: never).
//   Per transfer: bit 15 ends the USB batch after it; the low bits % 4096 are
//   its length (0: a ZLP); the last transfer takes whatever is left.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "mux/reassembler.h"

using namespace tsmuxd;
using namespace tsmuxd::mux;

namespace {

using Bytes = std::vector<uint8_t>;

struct Transfer {
  uint8_t* data;  // malloc'd at its exact size
  size_t len;
  bool endsBatch;
};

// The stream cut as the reference sees it: all at once.
struct StreamResult {
  std::vector<Bytes> packets;
  bool faulted = false;
};

StreamResult referenceStream(const Bytes& s, size_t maxPacket, unsigned stopAfter) {
  StreamResult r;
  size_t headerSize = kHeaderSizeV1;
  size_t at = 0;
  while (s.size() - at >= 8) {
    uint32_t protocol = getBe32(&s[at]);
    uint32_t length = getBe32(&s[at + 4]);
    if (checkHeader(protocol, length, headerSize) || length > maxPacket) {
      r.faulted = true;
      return r;
    }
    if (s.size() - at < length) break;
    r.packets.emplace_back(s.begin() + long(at), s.begin() + long(at + length));
    at += length;
    if (protocol == kProtoVersion) headerSize = kHeaderSizeV2;
    if (stopAfter && r.packets.size() == stopAfter) break;
  }
  return r;
}

void fuzzStream(const std::vector<Transfer>& transfers, const Bytes& all, size_t maxPacket,
                unsigned stopAfter) {
  StreamReassembler stream(maxPacket);
  StreamResult got;
  const Transfer* current = nullptr;
  bool stopped = false;
  auto sink = [&](const uint8_t* p, size_t n, bool inTransfer) {
    FUZZ_CHECK(!stopped, "sink called after it asked to stop");
    if (inTransfer) {
      FUZZ_CHECK(p >= current->data && p + n <= current->data + current->len,
                 "an in-transfer packet lies outside its transfer");
    }
    FUZZ_CHECK(n >= 8, "packet of %zu bytes", n);
    got.packets.emplace_back(p, p + n);
    if (getBe32(p) == kProtoVersion) stream.setHeaderSize(kHeaderSizeV2);
    if (stopAfter && got.packets.size() == stopAfter) stopped = true;
    return !stopped;
  };
  for (const Transfer& t : transfers) {
    current = &t;
    Fault fault;
    if (!stream.feed(t.data, t.len, sink, fault)) {
      FUZZ_CHECK(fault, "feed failed without a fault");
      got.faulted = true;
      break;
    }
    FUZZ_CHECK(!fault, "feed succeeded with a fault set");
    // What waits is one partial packet, never more than the limit allows.
    FUZZ_CHECK(stream.pendingBytes() < std::max<size_t>(8, maxPacket),
               "%zu bytes pending", stream.pendingBytes());
    if (stopped) break;
  }
  StreamResult want = referenceStream(all, maxPacket, stopAfter);
  FUZZ_CHECK(got.faulted == want.faulted, "fault %d, reference %d", int(got.faulted),
             int(want.faulted));
  FUZZ_CHECK(got.packets == want.packets, "%zu packets, reference %zu", got.packets.size(),
             want.packets.size());
}

void fuzzMessages(std::vector<Transfer>& transfers, uint16_t maxPacketSize, size_t maxMessage) {
  MessageAssembler assembler(maxPacketSize, maxMessage);
  const uint16_t mps = maxPacketSize ? maxPacketSize : 512;
  // The reference: transfers pile up until one ends a message.
  Bytes pile;
  std::vector<Bytes> wantMessages, gotMessages;
  std::vector<size_t> wantFaults, gotFaults;
  std::vector<const Transfer*> batch;
  for (Transfer& t : transfers) {
    batch.push_back(&t);
    assembler.feed(
        t.data, t.len,
        [&](const uint8_t* p, size_t n, bool inTransfer) {
          if (inTransfer) {
            bool inside = false;
            for (const Transfer* b : batch) {
              inside |= p >= b->data && p + n <= b->data + b->len;
            }
            FUZZ_CHECK(inside, "an in-transfer message lies outside this batch's transfers");
          }
          FUZZ_CHECK(n > 0 && n <= maxMessage, "message of %zu bytes (max %zu)", n, maxMessage);
          gotMessages.emplace_back(p, p + n);
        },
        [&](const Fault& f) {
          FUZZ_CHECK(std::strcmp(f.code, codes::kMessageTooLarge) == 0, "fault %s", f.code);
          gotFaults.push_back(gotMessages.size());
        });
    pile.insert(pile.end(), t.data, t.data + t.len);
    if (t.len == 0 || t.len % mps != 0) {
      if (pile.size() > maxMessage) {
        wantFaults.push_back(wantMessages.size());
      } else if (!pile.empty()) {
        wantMessages.push_back(pile);
      }
      pile.clear();
    }
    if (t.endsBatch) {
      assembler.batchEnd();
      for (const Transfer* b : batch) {
        std::free(b->data);
        const_cast<Transfer*>(b)->data = nullptr;
      }
      batch.clear();
    }
  }
  FUZZ_CHECK(gotMessages == wantMessages, "%zu messages, reference %zu", gotMessages.size(),
             wantMessages.size());
  FUZZ_CHECK(gotFaults == wantFaults, "%zu faults, reference %zu", gotFaults.size(),
             wantFaults.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::InputReader in(data, size);
  uint8_t config = in.u8();
  static const size_t kLimits[] = {kMaxPacketLength, 64, 1024, 16384};
  static const uint16_t kPacketSizes[] = {512, 64, 1024, 0};
  size_t limit = kLimits[config & 3];
  uint16_t maxPacketSize = kPacketSizes[(config >> 2) & 3];
  unsigned stopAfter = (config >> 4) & 7;
  size_t count = 1 + in.u8() % 32;
  std::vector<uint16_t> cuts(count);
  for (auto& c : cuts) c = in.u16();
  Bytes all;
  std::vector<Transfer> transfers;
  for (size_t i = 0; i < count; ++i) {
    size_t len = i + 1 == count ? in.remaining() : size_t(cuts[i] & 0xfff);
    const uint8_t* at = in.bytes(len);
    Transfer t{static_cast<uint8_t*>(std::malloc(len ? len : 1)), len, (cuts[i] & 0x8000) != 0};
    if (len) std::memcpy(t.data, at, len);
    all.insert(all.end(), at, at + len);
    transfers.push_back(t);
  }
  fuzzStream(transfers, all, limit, stopAfter);
  fuzzMessages(transfers, maxPacketSize, limit);
  for (Transfer& t : transfers) std::free(t.data);
  return 0;
}
