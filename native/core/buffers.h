#pragma once
// Memory for the data path. All of it lives on the event thread, so none of
// it locks. Steady state allocates nothing: packets come from a pool of
// fixed-size blocks and go back to it when sent.
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace tsmuxd::core {

class BufferPool {
 public:
  static constexpr size_t kSmall = 512;
  static constexpr size_t kLarge = 65536;

  BufferPool(size_t maxFreeSmall = 4096, size_t maxFreeLarge = 256)
      : maxFreeSmall_(maxFreeSmall), maxFreeLarge_(maxFreeLarge) {}
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Returns a block of at least `size` bytes (size <= kLarge) and its capacity.
  uint8_t* acquire(size_t size, size_t& capacity);
  void release(uint8_t* block, size_t capacity);

 private:
  std::vector<uint8_t*> small_;
  std::vector<uint8_t*> large_;
  size_t maxFreeSmall_;
  size_t maxFreeLarge_;
};

// One USB transfer on its way out. A zero length is a ZLP.
class OutPacket {
 public:
  OutPacket() = default;
  OutPacket(BufferPool& pool, size_t size) : pool_(&pool), len_(uint32_t(size)) {
    size_t cap = 0;
    data_ = size ? pool.acquire(size, cap) : nullptr;
    cap_ = uint32_t(cap);
  }
  ~OutPacket() { reset(); }
  OutPacket(OutPacket&& o) noexcept { *this = std::move(o); }
  OutPacket& operator=(OutPacket&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = o.pool_;
      data_ = o.data_;
      len_ = o.len_;
      cap_ = o.cap_;
      o.data_ = nullptr;
      o.len_ = o.cap_ = 0;
    }
    return *this;
  }
  OutPacket(const OutPacket&) = delete;
  OutPacket& operator=(const OutPacket&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return len_; }
  size_t capacity() const { return cap_; }
  void resize(size_t n) { len_ = uint32_t(n); }  // n <= capacity()

 private:
  void reset() {
    if (data_) pool_->release(data_, cap_);
    data_ = nullptr;
  }
  BufferPool* pool_ = nullptr;
  uint8_t* data_ = nullptr;
  uint32_t len_ = 0;
  uint32_t cap_ = 0;
};

// Bytes received from the peer that the local socket has not taken yet. It
// packs small payloads into shared blocks, so a peer that sends one byte per
// packet costs no more memory than one that sends 48 KiB per packet.
class ByteQueue {
 public:
  explicit ByteQueue(BufferPool& pool) : pool_(&pool) {}
  ~ByteQueue() { clear(); }
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void append(const uint8_t* data, size_t len);
  // Fills up to `max` iovecs with the queued bytes, oldest first.
  int gather(struct iovec* iov, int max) const;
  void consume(size_t n);
  void clear();

 private:
  struct Chunk {
    uint8_t* data;
    uint32_t head;
    uint32_t tail;
  };
  BufferPool* pool_;
  std::vector<Chunk> chunks_;
  size_t size_ = 0;
};

}  // namespace tsmuxd::core
