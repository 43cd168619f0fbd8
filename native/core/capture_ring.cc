#include "core/capture_ring.h"

#include <cstring>

namespace tsmuxd::core {

CaptureRing::CaptureRing(size_t capacity)
    : capacity_(align8(capacity < 64 ? 64 : capacity)), bytes_(new uint8_t[capacity_]) {}

bool CaptureRing::push(CaptureRecord header, const uint8_t* data, size_t len) {
  size_t need = align8(sizeof(CaptureRecord) + len);
  if (need > capacity_ || len > UINT32_MAX) return false;
  uint64_t head = head_.load(std::memory_order_relaxed);
  uint64_t tail = tail_.load(std::memory_order_acquire);
  size_t offset = size_t(head % capacity_);
  size_t toEnd = capacity_ - offset;
  size_t padding = toEnd < need ? toEnd : 0;
  if (capacity_ - size_t(head - tail) < padding + need) return false;
  if (padding) {
    // Offsets are multiples of 8, so at least the padding's size and kind fit.
    uint32_t size = uint32_t(padding);
    std::memcpy(bytes_.get() + offset, &size, sizeof size);
    bytes_[offset + 4] = uint8_t(CaptureKind::Padding);
    offset = 0;
  }
  header.size = uint32_t(need);
  header.dataLen = uint32_t(len);
  std::memcpy(bytes_.get() + offset, &header, sizeof header);
  if (len) std::memcpy(bytes_.get() + offset + sizeof header, data, len);
  head_.store(head + padding + need, std::memory_order_release);
  return true;
}

bool CaptureRing::front(CaptureRecord& header, const uint8_t*& data) {
  for (;;) {
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    uint64_t head = head_.load(std::memory_order_acquire);
    if (head == tail) return false;
    size_t offset = size_t(tail % capacity_);
    uint32_t size;
    std::memcpy(&size, bytes_.get() + offset, sizeof size);
    if (CaptureKind(bytes_[offset + 4]) == CaptureKind::Padding) {
      tail_.store(tail + size, std::memory_order_release);
      continue;
    }
    std::memcpy(&header, bytes_.get() + offset, sizeof header);
    data = bytes_.get() + offset + sizeof header;
    frontSize_ = size;
    return true;
  }
}

void CaptureRing::pop() {
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  tail_.store(tail + frontSize_, std::memory_order_release);
  frontSize_ = 0;
}

size_t CaptureRing::used() const {
  return size_t(head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire));
}

}  // namespace tsmuxd::core
