#include "core/capture_tap.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace tsmuxd::core {

namespace {
constexpr uint32_t kMuxProtocolTcp = 6;
constexpr size_t kIpv6HeaderSize = 40;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}
uint16_t be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

// The device's port of a mux TCP packet, 0 if it has none.
uint16_t muxDevicePort(const uint8_t* packet, size_t len, size_t headerSize, CaptureDirection direction) {
  if (len < headerSize + 4) return 0;
  const uint8_t* tcp = packet + headerSize;
  return direction == CaptureDirection::ToDevice ? be16(tcp + 2) : be16(tcp);
}

// Either port of a TCP or UDP packet in a tunnel matches (no extension headers).
bool tunnelPortMatches(const uint8_t* packet, size_t len, uint16_t port) {
  if (len < kIpv6HeaderSize + 4) return false;
  uint8_t next = packet[6];
  if (next != kIpProtoTcp && next != kIpProtoUdp) return false;
  return be16(packet + kIpv6HeaderSize) == port || be16(packet + kIpv6HeaderSize + 2) == port;
}
}  // namespace

CaptureInterface muxInterfaceOf(const uint8_t* packet, size_t len) {
  return len >= 4 && be32(packet) == kMuxProtocolTcp ? CaptureInterface::MuxTcp : CaptureInterface::MuxControl;
}

CaptureSink::CaptureSink(uint32_t sinkId, size_t ringBytes, CaptureFilter f, int fd)
    : id(sinkId),
      ring(std::min(std::max(ringBytes, kMinCaptureRingBytes), kMaxCaptureRingBytes)),
      wakeFd(fd),
      filter(std::move(f)) {}

bool CaptureSink::wants(uint32_t handle) const {
  return filter.allDevices || std::find(filter.handles.begin(), filter.handles.end(), handle) != filter.handles.end();
}

bool CaptureSink::offer(const CaptureRecord& header, const uint8_t* data, size_t len, uint64_t interfaceKey) {
  records.fetch_add(1, std::memory_order_relaxed);
  bool pushed = ring.push(header, data, len);
  if (!pushed) {
    dropped.fetch_add(1, std::memory_order_relaxed);
    ++dropsByInterface[interfaceKey];
  }
  wakeWriter();
  return pushed;
}

void CaptureSink::wakeWriter() {
  // Pairs with the writer's fence between setting writerSleeping and
  // looking at the ring: one of the two sees the other's store.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (writerSleeping.load(std::memory_order_relaxed) && writerSleeping.exchange(false)) {
    eventfd_write(wakeFd, 1);
  }
}

uint64_t CaptureTap::wallClockUs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
}

void CaptureTap::add(std::shared_ptr<CaptureSink> sink) {
  sinks_.push_back(std::move(sink));
  sinkCount_.store(int(sinks_.size()), std::memory_order_release);
}

std::shared_ptr<CaptureSink> CaptureTap::remove(uint32_t id) {
  auto it = std::find_if(sinks_.begin(), sinks_.end(), [id](const auto& s) { return s->id == id; });
  if (it == sinks_.end()) return nullptr;
  std::shared_ptr<CaptureSink> sink = std::move(*it);
  sinks_.erase(it);
  sinkCount_.store(int(sinks_.size()), std::memory_order_release);
  if (sinks_.empty()) labels_.clear();
  return sink;
}

void CaptureTap::allow(uint32_t id, uint32_t handle) {
  for (auto& sink : sinks_) {
    if (sink->id != id || sink->wants(handle)) continue;
    if (sink->filter.handles.size() < kMaxCaptureHandles) sink->filter.handles.push_back(handle);
  }
}

void CaptureTap::label(uint32_t handle, std::string text) {
  if (text.size() > kMaxSecretLineBytes) text.resize(kMaxSecretLineBytes);
  labels_[handle] = std::move(text);
  uint64_t now = wallClockUs();
  for (auto& sink : sinks_) {
    if (!sink->wants(handle)) continue;
    sink->labelled.erase(handle);
    labelFor(*sink, handle, now);
  }
}

void CaptureTap::labelFor(CaptureSink& sink, uint32_t handle, uint64_t timeUs) {
  if (!sink.labelled.insert(handle).second) return;
  auto it = labels_.find(handle);
  CaptureRecord r;
  r.kind = CaptureKind::Label;
  r.source = handle;
  r.timeUs = timeUs;
  const std::string empty;
  const std::string& text = it == labels_.end() ? empty : it->second;
  // A label lost to a full ring leaves the interface named by its handle only.
  if (!sink.ring.push(r, reinterpret_cast<const uint8_t*>(text.data()), text.size())) sink.labelled.erase(handle);
}

void CaptureTap::muxPacket(uint32_t handle, CaptureDirection direction, const uint8_t* packet, size_t len,
                           size_t headerSize) {
  if (secretsPosted_.load(std::memory_order_acquire)) takePostedSecrets();
  CaptureInterface iface = muxInterfaceOf(packet, len);
  CaptureRecord r;
  r.kind = CaptureKind::Mux;
  r.direction = direction;
  r.aux = uint16_t(headerSize);
  r.source = handle;
  r.timeUs = wallClockUs();
  for (auto& sink : sinks_) {
    if (!sink->wants(handle)) continue;
    if (sink->filter.port) {
      if (iface != CaptureInterface::MuxTcp) continue;
      if (muxDevicePort(packet, len, headerSize, direction) != sink->filter.port) continue;
    }
    labelFor(*sink, handle, r.timeUs);
    sink->offer(r, packet, len, captureInterfaceKey(iface, handle));
  }
}

void CaptureTap::tunnelPacket(uint32_t tunnel, uint32_t device, CaptureDirection direction, const uint8_t* packet,
                              size_t len) {
  if (secretsPosted_.load(std::memory_order_acquire)) takePostedSecrets();
  CaptureRecord r;
  r.kind = CaptureKind::Tunnel;
  r.direction = direction;
  r.source = tunnel;
  r.device = device;
  r.timeUs = wallClockUs();
  for (auto& sink : sinks_) {
    if (!sink->wants(device)) continue;
    if (sink->filter.port && !tunnelPortMatches(packet, len, sink->filter.port)) continue;
    labelFor(*sink, device, r.timeUs);
    sink->offer(r, packet, len, captureInterfaceKey(CaptureInterface::Tunnel, tunnel));
  }
}

void CaptureTap::secret(const char* line, size_t len) {
  if (len > kMaxSecretLineBytes) return;
  CaptureRecord r;
  r.kind = CaptureKind::Secret;
  r.timeUs = wallClockUs();
  // Secrets are few and every later packet may need them: a full ring drops
  // them like packets, and the count says so.
  for (auto& sink : sinks_) sink->offer(r, reinterpret_cast<const uint8_t*>(line), len, 0);
}

void CaptureTap::postSecret(std::string line) {
  if (!running() || line.size() > kMaxSecretLineBytes) return;
  std::lock_guard<std::mutex> lock(secretsMutex_);
  if (postedSecrets_.size() >= kMaxPostedSecrets) return;
  postedSecrets_.push_back(std::move(line));
  secretsPosted_.store(true, std::memory_order_release);
}

void CaptureTap::takePostedSecrets() {
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(secretsMutex_);
    lines.swap(postedSecrets_);
    secretsPosted_.store(false, std::memory_order_release);
  }
  for (const std::string& line : lines) secret(line.data(), line.size());
}

}  // namespace tsmuxd::core
