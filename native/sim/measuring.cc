#include "sim/measuring.h"

#include <algorithm>
#include <cstring>

namespace tsmuxd::sim {
namespace {

constexpr size_t kChunk = 256 << 10;
constexpr uint64_t kUnhashed = uint64_t(1) << 63;
constexpr size_t kDigestLength = 32;

void fillRandom(std::mt19937_64& rng, uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    memcpy(p + i, &v, std::min<size_t>(8, n - i));
  }
}

// One fixed random block: what an unhashed source sends, over and over.
const std::vector<uint8_t>& fixedBlock() {
  static const std::vector<uint8_t> block = [] {
    std::vector<uint8_t> b(kChunk);
    std::mt19937_64 rng(std::random_device{}());
    fillRandom(rng, b.data(), b.size());
    return b;
  }();
  return block;
}

}  // namespace

Measuring::Measuring(TestServiceKind kind) : kind_(kind), rng_(std::random_device{}()) {}

size_t Measuring::inputRoom() const {
  if (kind_ != TestServiceKind::Echo) return SIZE_MAX;
  size_t pending = out_.size() - outAt_;
  return pending >= kMaxPending ? 0 : kMaxPending - pending;
}

size_t Measuring::consume(const uint8_t* p, size_t n) {
  if (kind_ == TestServiceKind::Echo) {
    size_t take = std::min(n, inputRoom());
    if (outAt_ > 0 && outAt_ == out_.size()) {
      out_.clear();
      outAt_ = 0;
    }
    out_.insert(out_.end(), p, p + take);
    return take;
  }
  const size_t total = n;
  while (n > 0) {
    if (kind_ == TestServiceKind::Source && (streamLeft_ > 0 || digestDue_)) return total;  // one request at a time
    if (!inBody_) {
      size_t take = std::min(n, sizeof header_ - headerLen_);
      memcpy(header_ + headerLen_, p, take);
      headerLen_ += take;
      p += take;
      n -= take;
      if (headerLen_ < sizeof header_) break;
      headerLen_ = 0;
      uint64_t request = 0;
      for (uint8_t b : header_) request = request << 8 | b;
      hashed_ = (request & kUnhashed) == 0;
      if (hashed_) hash_ = Sha256();
      uint64_t length = request & ~kUnhashed;
      if (kind_ == TestServiceKind::Source) {
        streamLeft_ = length;
        digestDue_ = true;
        continue;
      }
      remaining_ = length;
      inBody_ = true;
      if (remaining_ == 0) {
        inBody_ = false;
        appendDigest();
      }
      continue;
    }
    size_t take = size_t(std::min<uint64_t>(n, remaining_));
    if (hashed_) hash_.update(p, take);
    p += take;
    n -= take;
    remaining_ -= take;
    if (remaining_ == 0) {
      inBody_ = false;
      appendDigest();
    }
  }
  return total;
}

void Measuring::appendDigest() {
  if (outAt_ > 0 && outAt_ == out_.size()) {
    out_.clear();
    outAt_ = 0;
  }
  if (hashed_) {
    auto d = hash_.digest();
    out_.insert(out_.end(), d.begin(), d.end());
  } else {
    out_.insert(out_.end(), kDigestLength, 0);
  }
}

void Measuring::refill() {
  if (outSize() > 0 || kind_ != TestServiceKind::Source) return;
  out_.clear();
  outAt_ = 0;
  if (streamLeft_ > 0) {
    size_t n = size_t(std::min<uint64_t>(streamLeft_, kChunk));
    if (hashed_) {
      out_.resize(n);
      fillRandom(rng_, out_.data(), n);
      hash_.update(out_.data(), n);
    } else {
      const auto& block = fixedBlock();
      out_.assign(block.begin(), block.begin() + ptrdiff_t(n));
    }
    streamLeft_ -= n;
  } else if (digestDue_) {
    digestDue_ = false;
    appendDigest();
  }
}

bool Measuring::hasOutput() {
  refill();
  return outSize() > 0;
}

const uint8_t* Measuring::outData() {
  refill();
  return out_.data() + outAt_;
}

void Measuring::sent(size_t n) {
  outAt_ += std::min(n, outSize());
  if (outAt_ == out_.size()) {
    out_.clear();
    outAt_ = 0;
  }
}

}  // namespace tsmuxd::sim
