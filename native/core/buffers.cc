#include "core/buffers.h"

#include <algorithm>
#include <cstdlib>
#include <new>

namespace tsmuxd::core {

BufferPool::~BufferPool() {
  for (uint8_t* p : small_) std::free(p);
  for (uint8_t* p : large_) std::free(p);
}

uint8_t* BufferPool::acquire(size_t size, size_t& capacity) {
  std::vector<uint8_t*>& list = size <= kSmall ? small_ : large_;
  capacity = size <= kSmall ? kSmall : kLarge;
  if (!list.empty()) {
    uint8_t* p = list.back();
    list.pop_back();
    return p;
  }
  auto* p = static_cast<uint8_t*>(std::malloc(capacity));
  if (!p) throw std::bad_alloc();
  return p;
}

void BufferPool::release(uint8_t* block, size_t capacity) {
  std::vector<uint8_t*>& list = capacity == kSmall ? small_ : large_;
  size_t max = capacity == kSmall ? maxFreeSmall_ : maxFreeLarge_;
  if (list.size() < max) {
    list.push_back(block);
  } else {
    std::free(block);
  }
}

void ByteQueue::append(const uint8_t* data, size_t len) {
  while (len > 0) {
    if (chunks_.empty() || chunks_.back().tail == BufferPool::kLarge) {
      size_t cap = 0;
      chunks_.push_back(Chunk{pool_->acquire(BufferPool::kLarge, cap), 0, 0});
    }
    Chunk& c = chunks_.back();
    size_t take = std::min(len, BufferPool::kLarge - c.tail);
    std::memcpy(c.data + c.tail, data, take);
    c.tail += uint32_t(take);
    size_ += take;
    data += take;
    len -= take;
  }
}

int ByteQueue::gather(struct iovec* iov, int max) const {
  int n = 0;
  for (const Chunk& c : chunks_) {
    if (n == max) break;
    if (c.tail == c.head) continue;
    iov[n].iov_base = c.data + c.head;
    iov[n].iov_len = c.tail - c.head;
    ++n;
  }
  return n;
}

void ByteQueue::consume(size_t n) {
  size_ -= std::min(n, size_);
  size_t drop = 0;
  for (Chunk& c : chunks_) {
    size_t avail = c.tail - c.head;
    size_t take = std::min(n, avail);
    c.head += uint32_t(take);
    n -= take;
    if (c.head != c.tail) break;
    ++drop;
    if (n == 0) break;
  }
  for (size_t i = 0; i < drop; ++i) pool_->release(chunks_[i].data, BufferPool::kLarge);
  chunks_.erase(chunks_.begin(), chunks_.begin() + drop);
  if (chunks_.empty()) chunks_.shrink_to_fit();
}

void ByteQueue::clear() {
  for (Chunk& c : chunks_) pool_->release(c.data, BufferPool::kLarge);
  chunks_.clear();
  chunks_.shrink_to_fit();
  size_ = 0;
}

}  // namespace tsmuxd::core
