#include "engine/capture_writer.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "engine/capture_packets.h"
#include "engine/pcapng.h"

namespace tsmuxd::engine {

namespace {

const char* interfaceKindName(core::CaptureInterface kind) {
  switch (kind) {
    case core::CaptureInterface::MuxTcp: return "mux";
    case core::CaptureInterface::MuxControl: return "mux-control";
    default: return "tunnel";
  }
}

pcapng::Direction packetDirection(core::CaptureDirection d) {
  // As the host sees it: toward the device is outbound.
  return d == core::CaptureDirection::ToDevice ? pcapng::Direction::Outbound : pcapng::Direction::Inbound;
}

uint64_t monotonicMs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count());
}

}  // namespace

CaptureWriter::CaptureWriter(std::shared_ptr<core::CaptureSink> sink, int fd, int wakeFd, std::string application,
                             std::function<void(const std::string&, bool)> onEnd,
                             std::function<void(const CaptureSummary&)> onDone)
    : sink_(std::move(sink)), fd_(fd), wakeFd_(wakeFd), application_(std::move(application)),
      onEnd_(std::move(onEnd)), onDone_(std::move(onDone)) {
  struct stat st;
  if (fstat(fd_, &st) == 0) {
    isSocket_ = S_ISSOCK(st.st_mode);
    isFile_ = S_ISREG(st.st_mode);
    // A socket or a pipe tells us when its reader leaves; a file never does.
    watchOutput_ = isSocket_ || S_ISFIFO(st.st_mode);
  }
  out_.reserve(kCaptureFlushBytes + (128 << 10));
}

CaptureWriter::~CaptureWriter() {
  join();
  if (fd_ >= 0) ::close(fd_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void CaptureWriter::start() { thread_ = std::thread([this] { run(); }); }

void CaptureWriter::join() {
  if (thread_.joinable()) thread_.join();
}

void CaptureWriter::signal() { eventfd_write(wakeFd_, 1); }

void CaptureWriter::finish(const std::string& reason) {
  if (finishing_.load() || abandoned_.load()) return;
  stopReason_ = reason;
  finishing_.store(true, std::memory_order_release);
  signal();
}

void CaptureWriter::abandon(const std::string& reason) {
  if (abandoned_.load()) return;
  if (!finishing_.load()) stopReason_ = reason;
  abandoned_.store(true, std::memory_order_release);
  signal();
}

void CaptureWriter::ended(const std::string& reason, bool failed) {
  if (endAsked_) return;
  endAsked_ = true;
  summary_.failed = failed;
  if (summary_.reason.empty()) summary_.reason = reason;
  onEnd_(reason, failed);
}

void CaptureWriter::run() {
  pthread_setname_np(pthread_self(), "tsmuxd-capture");
  pcapng::sectionHeader(out_, application_);
  bool outputOk = flush(false);
  while (outputOk && !abandoned_.load(std::memory_order_acquire)) {
    bool finishing = finishing_.load(std::memory_order_acquire);
    drain();
    if (!outputOk || !flush(false)) break;
    if (finishing) {
      writeStatistics();
      flush(true);
      break;
    }
    if (!summary_.failed) waitForWork();
  }
  if (summary_.reason.empty()) summary_.reason = stopReason_;
  summary_.dropped = sink_->dropped.load();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  onDone_(summary_);
}

void CaptureWriter::drain() {
  core::CaptureRecord r;
  const uint8_t* data;
  while (sink_->ring.front(r, data)) {
    encode(r, data);
    sink_->ring.pop();
    if (out_.size() >= kCaptureFlushBytes && !flush(false)) return;
  }
}

uint32_t CaptureWriter::interfaceFor(core::CaptureInterface kind, uint32_t source, uint32_t device) {
  uint64_t key = core::captureInterfaceKey(kind, source);
  auto it = interfaces_.find(key);
  if (it != interfaces_.end()) {
    ++it->second.packets;
    return it->second.id;
  }
  uint32_t id = nextInterface_++;
  interfaces_.emplace(key, Interface{id, 1});
  auto label = labels_.find(device);
  std::string who = label != labels_.end() && !label->second.empty() ? label->second : "device " + std::to_string(device);
  std::string name = std::string(interfaceKindName(kind)) + "-" + std::to_string(source);
  std::string description;
  switch (kind) {
    case core::CaptureInterface::MuxTcp:
      description = who + ": mux connections as IPv6/TCP (synthetic addresses, the mux's ports and sequence numbers)";
      break;
    case core::CaptureInterface::MuxControl:
      description = who + ": mux VERSION, SETUP and CONTROL packets with their mux header (user link type 147)";
      break;
    default:
      description = who + ": the IPv6 packets of CoreDeviceProxy tunnel " + std::to_string(source);
      break;
  }
  uint16_t linkType = kind == core::CaptureInterface::MuxControl ? pcapng::kLinkTypeUser0 : pcapng::kLinkTypeIpv6;
  pcapng::interfaceDescription(out_, linkType, name, description);
  return id;
}

void CaptureWriter::encode(const core::CaptureRecord& r, const uint8_t* data) {
  switch (r.kind) {
    case core::CaptureKind::Label:
      labels_[r.source] = std::string(reinterpret_cast<const char*>(data), r.dataLen);
      return;
    case core::CaptureKind::Secret: {
      std::vector<uint8_t> line(data, data + r.dataLen);
      line.push_back('\n');
      pcapng::decryptionSecrets(out_, pcapng::kSecretsTls, line.data(), line.size());
      return;
    }
    case core::CaptureKind::Tunnel: {
      uint32_t iface = interfaceFor(core::CaptureInterface::Tunnel, r.source, r.device);
      pcapng::enhancedPacket(out_, iface, r.timeUs, nullptr, 0, data, r.dataLen, packetDirection(r.direction));
      break;
    }
    case core::CaptureKind::Mux: {
      SyntheticTcp tcp;
      if (syntheticTcp(r.source, r.direction, data, r.dataLen, r.aux, tcp)) {
        uint32_t iface = interfaceFor(core::CaptureInterface::MuxTcp, r.source, r.source);
        pcapng::enhancedPacket(out_, iface, r.timeUs, tcp.header, tcp.headerLen, tcp.payload, tcp.payloadLen,
                               packetDirection(r.direction));
      } else {
        uint32_t iface = interfaceFor(core::CaptureInterface::MuxControl, r.source, r.source);
        pcapng::enhancedPacket(out_, iface, r.timeUs, nullptr, 0, data, r.dataLen, packetDirection(r.direction),
                               describeMuxPacket(data, r.dataLen, r.aux));
      }
      break;
    }
    default:
      return;
  }
  ++summary_.packets;
}

void CaptureWriter::writeStatistics() {
  // The tap has let go of the sink (finish() comes after), so its
  // per-interface drop counts are final and ours to read.
  uint64_t dropped = sink_->dropped.load();
  std::string comment = "tsmuxd: " + std::to_string(dropped) + " records dropped in all (the capture's ring was full)";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = uint64_t(ts.tv_sec) * 1000000u + uint64_t(ts.tv_nsec) / 1000u;
  for (const auto& [key, iface] : interfaces_) {
    auto d = sink_->dropsByInterface.find(key);
    uint64_t drops = d == sink_->dropsByInterface.end() ? 0 : d->second;
    pcapng::interfaceStatistics(out_, iface.id, now, iface.packets + drops, drops, comment);
  }
}

bool CaptureWriter::flush(bool final) {
  size_t done = 0;
  uint64_t deadline = final ? monotonicMs() + kCaptureFinalFlushMs : 0;
  uint64_t blockStart = written_;  // out_ holds whole blocks only
  while (done < out_.size()) {
    if (abandoned_.load(std::memory_order_acquire)) return false;
    ssize_t n = isSocket_ ? ::send(fd_, out_.data() + done, out_.size() - done, MSG_NOSIGNAL)
                          : ::write(fd_, out_.data() + done, out_.size() - done);
    if (n > 0) {
      done += size_t(n);
      written_ += uint64_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int timeout = -1;
      if (final || finishing_.load()) {
        if (!deadline) deadline = monotonicMs() + kCaptureFinalFlushMs;
        uint64_t now = monotonicMs();
        if (now >= deadline) {
          ended("the reader did not take the end of the capture in time", true);
          return false;
        }
        timeout = int(deadline - now);
      }
      struct pollfd fds[2] = {{fd_, POLLOUT, 0}, {wakeFd_, POLLIN, 0}};
      if (poll(fds, 2, timeout) > 0 && (fds[1].revents & POLLIN)) {
        eventfd_t ignored;
        eventfd_read(wakeFd_, &ignored);
      }
      if (fds[0].revents & (POLLERR | POLLHUP)) {
        ended("the reader went away", true);
        return false;
      }
      continue;
    }
    int err = n < 0 ? errno : ENOSPC;
    if (isFile_) {
      // Cut the file back to its last whole block, so it opens cleanly.
      if (ftruncate(fd_, off_t(blockStart)) == 0) written_ = blockStart;
    }
    ended(err == EPIPE || err == ECONNRESET ? "the reader went away"
                                            : std::string("writing the capture failed: ") + std::strerror(err),
          true);
    return false;
  }
  summary_.bytes = written_;
  out_.clear();
  return true;
}

void CaptureWriter::waitForWork() {
  sink_->writerSleeping.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sink_->ring.used() > 0 || finishing_.load() || abandoned_.load()) {
    sink_->writerSleeping.store(false, std::memory_order_relaxed);
    return;
  }
  struct pollfd fds[2] = {{wakeFd_, POLLIN, 0}, {fd_, POLLRDHUP, 0}};
  int count = watchOutput_ && !endAsked_ ? 2 : 1;
  int n = poll(fds, nfds_t(count), -1);
  sink_->writerSleeping.store(false, std::memory_order_relaxed);
  if (n <= 0) return;
  if (fds[0].revents & POLLIN) {
    eventfd_t ignored;
    eventfd_read(wakeFd_, &ignored);
  }
  if (count == 2 && fds[1].revents) {
    if (fds[1].revents & (POLLERR | POLLHUP)) ended("the reader went away", true);
    else ended("the client ended the capture", false);
  }
}

}  // namespace tsmuxd::engine
