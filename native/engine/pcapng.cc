#include "engine/pcapng.h"

#include <cstring>

namespace tsmuxd::engine::pcapng {

namespace {

constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kInterfaceDescription = 1;
constexpr uint32_t kInterfaceStatistics = 5;
constexpr uint32_t kEnhancedPacket = 6;
constexpr uint32_t kDecryptionSecrets = 0x0A;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;

constexpr uint16_t kOptEnd = 0;
constexpr uint16_t kOptComment = 1;
constexpr uint16_t kShbUserAppl = 4;
constexpr uint16_t kIfName = 2;
constexpr uint16_t kIfDescription = 3;
constexpr uint16_t kEpbFlags = 2;
constexpr uint16_t kIsbEndTime = 3;
constexpr uint16_t kIsbIfRecv = 4;
constexpr uint16_t kIsbIfDrop = 5;
// An option's value is at most 65535 bytes; ours are names and comments.
constexpr size_t kMaxOptionBytes = 4096;

size_t pad4(size_t n) { return (n + 3) & ~size_t(3); }

void put(std::vector<uint8_t>& out, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  out.insert(out.end(), p, p + len);
}
void put16(std::vector<uint8_t>& out, uint16_t v) { put(out, &v, sizeof v); }
void put32(std::vector<uint8_t>& out, uint32_t v) { put(out, &v, sizeof v); }
void putPadding(std::vector<uint8_t>& out, size_t len) { out.insert(out.end(), pad4(len) - len, 0); }

void option(std::vector<uint8_t>& out, uint16_t code, const void* data, size_t len) {
  if (len > kMaxOptionBytes) len = kMaxOptionBytes;
  put16(out, code);
  put16(out, uint16_t(len));
  put(out, data, len);
  putPadding(out, len);
}
void option(std::vector<uint8_t>& out, uint16_t code, const std::string& text) {
  if (!text.empty()) option(out, code, text.data(), text.size());
}
void option64(std::vector<uint8_t>& out, uint16_t code, uint64_t v) { option(out, code, &v, sizeof v); }
void endOptions(std::vector<uint8_t>& out) {
  put16(out, kOptEnd);
  put16(out, 0);
}

// Starts a block; finishBlock() writes both length fields.
size_t beginBlock(std::vector<uint8_t>& out, uint32_t type) {
  size_t start = out.size();
  put32(out, type);
  put32(out, 0);
  return start;
}
void finishBlock(std::vector<uint8_t>& out, size_t start) {
  uint32_t total = uint32_t(out.size() - start + 4);
  std::memcpy(out.data() + start + 4, &total, 4);
  put32(out, total);
}

void timestamp(std::vector<uint8_t>& out, uint64_t timeUs) {
  put32(out, uint32_t(timeUs >> 32));
  put32(out, uint32_t(timeUs));
}

}  // namespace

void sectionHeader(std::vector<uint8_t>& out, const std::string& application) {
  size_t start = beginBlock(out, kSectionHeader);
  put32(out, kByteOrderMagic);
  put16(out, 1);  // major
  put16(out, 0);  // minor
  uint64_t unknownLength = ~uint64_t(0);
  put(out, &unknownLength, 8);
  option(out, kShbUserAppl, application);
  endOptions(out);
  finishBlock(out, start);
}

void interfaceDescription(std::vector<uint8_t>& out, uint16_t linkType, const std::string& name,
                          const std::string& description) {
  size_t start = beginBlock(out, kInterfaceDescription);
  put16(out, linkType);
  put16(out, 0);
  put32(out, 0);  // snaplen: no limit
  option(out, kIfName, name);
  option(out, kIfDescription, description);
  endOptions(out);
  finishBlock(out, start);
}

void enhancedPacket(std::vector<uint8_t>& out, uint32_t interface, uint64_t timeUs, const uint8_t* prefix,
                    size_t prefixLen, const uint8_t* data, size_t dataLen, Direction direction,
                    const std::string& comment) {
  size_t start = beginBlock(out, kEnhancedPacket);
  put32(out, interface);
  timestamp(out, timeUs);
  uint32_t length = uint32_t(prefixLen + dataLen);
  put32(out, length);  // captured
  put32(out, length);  // on the wire
  if (prefixLen) put(out, prefix, prefixLen);
  if (dataLen) put(out, data, dataLen);
  putPadding(out, length);
  if (direction != Direction::Unknown) {
    uint32_t flags = uint32_t(direction);
    option(out, kEpbFlags, &flags, sizeof flags);
  }
  option(out, kOptComment, comment);
  if (direction != Direction::Unknown || !comment.empty()) endOptions(out);
  finishBlock(out, start);
}

void decryptionSecrets(std::vector<uint8_t>& out, uint32_t type, const uint8_t* data, size_t len) {
  size_t start = beginBlock(out, kDecryptionSecrets);
  put32(out, type);
  put32(out, uint32_t(len));
  put(out, data, len);
  putPadding(out, len);
  finishBlock(out, start);
}

void interfaceStatistics(std::vector<uint8_t>& out, uint32_t interface, uint64_t timeUs, uint64_t received,
                         uint64_t dropped, const std::string& comment) {
  size_t start = beginBlock(out, kInterfaceStatistics);
  put32(out, interface);
  timestamp(out, timeUs);
  uint32_t high = uint32_t(timeUs >> 32), low = uint32_t(timeUs);
  uint32_t endTime[2] = {high, low};
  option(out, kIsbEndTime, endTime, sizeof endTime);
  option64(out, kIsbIfRecv, received);
  option64(out, kIsbIfDrop, dropped);
  option(out, kOptComment, comment);
  endOptions(out);
  finishBlock(out, start);
}

}  // namespace tsmuxd::engine::pcapng
