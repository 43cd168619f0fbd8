#include "mux/device_session.h"

#include <algorithm>
#include <cstring>

#include "core/capture_tap.h"

namespace tsmuxd::mux {

namespace {
constexpr uint32_t kLogLinesPerSecond = 200;
constexpr uint32_t kAnonymousRstsPerSecond = 256;
}  // namespace

const char* logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warning: return "warning";
    case LogLevel::Info: return "info";
    default: return "debug";
  }
}

DeviceSession::DeviceSession(core::EventLoop& loop, core::BufferPool& pool, EngineStats& stats,
                             PacketLink& link, SessionObserver& observer,
                             uint32_t handle, SessionOptions options)
    : loop_(loop),
      pool_(pool),
      stats_(stats),
      link_(link),
      observer_(observer),
      handle_(handle),
      options_(options),
      messages_(link.maxPacketSize()),
      usedPorts_(options.role == Role::Host ? 65536 : 0) {
  options_.window = std::min(std::max<uint32_t>(options_.window, 1u << kWindowShift), kMaxWindow);
}

DeviceSession::~DeviceSession() { loop_.cancelDeferred(this); }

void DeviceSession::start() {
  if (options_.role != Role::Host || state_ != State::Init) return;
  core::OutPacket p = newPacket(kVersionBodySize);
  uint8_t* body = p.data() + headerSize_;
  putBe32(body, 2);  // major
  putBe32(body + 4, 0);
  putBe32(body + 8, 0);
  sendPacket(kProtoVersion, std::move(p));
}

core::OutPacket DeviceSession::newPacket(size_t bodyLen) {
  return core::OutPacket(pool_, headerSize_ + bodyLen);
}

void DeviceSession::sendPacket(uint32_t protocol, core::OutPacket packet) {
  if (state_ == State::Dead) return;
  MuxHeader h;
  h.protocol = protocol;
  h.length = uint32_t(packet.size());
  h.txSeq = txSeq_;
  h.rxSeq = rxSeq_;
  writeMuxHeader(packet.data(), headerSize_, h);
  if (headerSize_ == kHeaderSizeV2) ++txSeq_;
  EngineStats::add(stats_.packetsOut, 1);
  traffic_.usbOut += packet.size();
  if (core::CaptureTap* tap = loop_.captureTap()) {
    tap->muxPacket(handle_, options_.role == Role::Host ? core::CaptureDirection::ToDevice : core::CaptureDirection::FromDevice,
                   packet.data(), packet.size(), headerSize_);
  }
  link_.send(std::move(packet), true);
}

void DeviceSession::sendTcp(core::OutPacket packet, const TcpHeader& th) {
  writeTcpHeader(packet.data() + headerSize_, th);
  if (th.flags & kRst) EngineStats::add(stats_.rstsOut, 1);
  sendPacket(kProtoTcp, std::move(packet));
}

void DeviceSession::controlLog(ControlType type, const std::string& text) {
  if (options_.role != Role::Device || !options_.controlLogs || state_ != State::Active) return;
  core::OutPacket p = newPacket(1 + text.size());
  uint8_t* body = p.data() + headerSize_;
  body[0] = uint8_t(type);
  std::memcpy(body + 1, text.data(), text.size());
  sendPacket(kProtoControl, std::move(p));
}

std::shared_ptr<Connection> DeviceSession::connect(uint32_t id, uint16_t port, uint64_t timeoutMs,
                                                   Fault& fault) {
  if (state_ != State::Active) {
    fault = Fault(codes::kNoDevice, "the device's mux session is not active");
    return nullptr;
  }
  uint16_t local = 0;
  if (!allocatePort(local)) {
    fault = Fault(codes::kNoConnection, "no free source port on this device");
    return nullptr;
  }
  auto conn = loop_.makeRetiring<Connection>(*this, id, Role::Host, local, port, options_.window);
  conns_[conn->key()] = conn;
  conn->startConnect(timeoutMs);
  return conn;
}

bool DeviceSession::allocatePort(uint16_t& port) {
  // Source ports start at 1, skip 0 when they wrap, and skip ports in use.
  for (uint32_t tries = 0; tries < 65535; ++tries) {
    uint16_t candidate = nextPort_++;
    if (nextPort_ == 0) nextPort_ = 1;
    if (candidate == 0) continue;
    if (!usedPorts_[candidate]) {
      usedPorts_[candidate] = true;
      port = candidate;
      return true;
    }
  }
  return false;
}

std::shared_ptr<Connection> DeviceSession::find(uint32_t key) const {
  auto it = conns_.find(key);
  return it == conns_.end() ? nullptr : it->second;
}

void DeviceSession::remove(Connection& c) {
  auto it = conns_.find(c.key());
  if (it == conns_.end() || it->second.get() != &c) return;
  if (c.role() == Role::Host) usedPorts_[c.localPort()] = false;
  conns_.erase(it);
}

void DeviceSession::peerGone(const std::string& reason) {
  state_ = State::Dead;
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& e : conns_) all.push_back(e.second);
  conns_.clear();
  std::fill(usedPorts_.begin(), usedPorts_.end(), false);
  for (auto& c : all) c->peerGone(reason);
}

void DeviceSession::resetAll(const std::string& reason) {
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& e : conns_) all.push_back(e.second);
  for (auto& c : all) c->reset(reason);
}

void DeviceSession::queueAck(Connection& c) {
  ackQueue_.push_back(c.weak_from_this());
  loop_.defer(this);
}

void DeviceSession::queueDirect(Connection& c) { directQueue_.push_back(c.shared_from_this()); }

void DeviceSession::onTransferBatchEnd() {
  // One write per connection for the whole batch, then the buffers go back.
  messages_.batchEnd();
  std::vector<std::shared_ptr<Connection>> queue;
  queue.swap(directQueue_);
  for (auto& c : queue) c->flushDirect();
}

void DeviceSession::waitForTransport(Connection& c) {
  transportWaiters_.push_back(c.weak_from_this());
}

void DeviceSession::runDeferred() {
  std::vector<std::weak_ptr<Connection>> queue;
  queue.swap(ackQueue_);
  for (auto& w : queue) {
    if (auto c = w.lock()) c->flushAck();
  }
}

void DeviceSession::onTransportDrained() {
  std::vector<std::weak_ptr<Connection>> waiters;
  waiters.swap(transportWaiters_);
  for (auto& w : waiters) {
    if (auto c = w.lock()) c->transportDrained();
  }
}

void DeviceSession::onTransportClosed(const Fault& why) { fail(why); }

void DeviceSession::fail(const Fault& why) {
  if (state_ == State::Dead) return;
  state_ = State::Dead;
  observer_.onSessionFailed(*this, why);
}

void DeviceSession::onTransfer(const uint8_t* data, size_t len) {
  if (state_ == State::Dead) return;
  traffic_.usbIn += len;
  if (options_.role == Role::Device) {
    messages_.feed(
        data, len, [this](const uint8_t* p, size_t n, bool t) { handleMessage(p, n, t); },
        [this](const Fault& f) { controlLog(kControlError, "asyncReadComplete, " + f.message); });
    return;
  }
  Fault fault;
  bool ok = stream_.feed(
      data, len, [this](const uint8_t* p, size_t n, bool t) { return handlePacket(p, n, t); },
      fault);
  if (!ok) fail(fault);
}

void DeviceSession::handleMessage(const uint8_t* p, size_t len, bool inTransfer) {
  // The phone sees whole messages: one must be exactly one packet.
  if (state_ == State::Dead) return;
  if (len < kHeaderSizeV1) {
    controlLog(kControlError, "message of " + std::to_string(len) + " bytes has no mux header");
    return;
  }
  uint32_t protocol = getBe32(p);
  uint32_t length = getBe32(p + 4);
  // A host's VERSION is v1-framed whatever was agreed before: it is how a
  // host starts, and a restarted daemon (usbmuxd restarted with the phone
  // still plugged in and configured) starts again mid-session.
  bool version = protocol == kProtoVersion;
  Fault f = checkHeader(protocol, length, version ? kHeaderSizeV1 : headerSize_);
  if (f) {
    controlLog(kControlError, f.message);
    observer_.onSessionLog(*this, LogLevel::Warning, "dropped a host message: " + f.message);
    return;
  }
  if (length != len) {
    std::string what = "packet size mismatch (header says " + std::to_string(length) +
                       ", message is " + std::to_string(len) + ")";
    controlLog(kControlError, what);
    observer_.onSessionLog(*this, LogLevel::Warning, "dropped a host message: " + what);
    return;
  }
  if (version && len < kHeaderSizeV1 + kVersionBodySize) {
    // A phone logs a malformed host message and carries on.
    std::string what = "VERSION body of " + std::to_string(len - kHeaderSizeV1) + " bytes";
    controlLog(kControlError, what);
    observer_.onSessionLog(*this, LogLevel::Warning, "dropped a host message: " + what);
    return;
  }
  if (version && state_ != State::Init) restartForNewHost();
  handlePacket(p, len, inTransfer);
}

void DeviceSession::restartForNewHost() {
  // The host has forgotten the old session and its connections (a daemon
  // restart sends RSTs before it exits, or nothing at all): the phone drops
  // them too, delivering what it already holds, and handshakes again.
  observer_.onSessionLog(*this, LogLevel::Info, "the host sent VERSION again: a new mux session");
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& e : conns_) all.push_back(e.second);
  conns_.clear();
  for (auto& c : all) c->peerGone("the host started a new mux session");
  state_ = State::Init;
  version_ = 0;
  headerSize_ = kHeaderSizeV1;
  txSeq_ = 0;
  rxSeq_ = 0;
}

bool DeviceSession::handlePacket(const uint8_t* p, size_t len, bool inTransfer) {
  MuxHeader h = readMuxHeader(p, headerSize_);
  if (headerSize_ == kHeaderSizeV2) rxSeq_ = h.txSeq;
  if (core::CaptureTap* tap = loop_.captureTap()) {
    tap->muxPacket(handle_, options_.role == Role::Host ? core::CaptureDirection::FromDevice : core::CaptureDirection::ToDevice,
                   p, len, headerSize_);
  }
  const uint8_t* body = p + headerSize_;
  size_t bodyLen = len - headerSize_;
  EngineStats::add(stats_.packetsIn, 1);
  switch (h.protocol) {
    case kProtoVersion: handleVersion(body, bodyLen); break;
    case kProtoSetup: handleSetup(body, bodyLen); break;
    case kProtoControl: handleControl(body, bodyLen); break;
    case kProtoTcp: handleTcp(body, bodyLen, inTransfer); break;
    default: break;  // unreachable: the framer checked the protocol
  }
  return state_ != State::Dead;
}

void DeviceSession::handleVersion(const uint8_t* body, size_t len) {
  if (len < kVersionBodySize) {  // host role: the device role checked it in handleMessage
    fail(Fault(codes::kShortBody, "VERSION body of " + std::to_string(len) + " bytes"));
    return;
  }
  uint32_t major = getBe32(body);
  uint32_t minor = getBe32(body + 4);
  if (state_ != State::Init) {
    observer_.onSessionLog(*this, LogLevel::Warning, "ignoring a repeated VERSION packet");
    return;
  }
  if (options_.role == Role::Device) {
    // Answer with our version in a v1 header, then switch framing.
    int ours = options_.deviceVersion == 1 ? 1 : 2;
    core::OutPacket reply = newPacket(kVersionBodySize);
    uint8_t* out = reply.data() + headerSize_;
    putBe32(out, uint32_t(ours));
    putBe32(out + 4, 0);
    putBe32(out + 8, 0);
    sendPacket(kProtoVersion, std::move(reply));
    version_ = ours;
    headerSize_ = headerSizeFor(ours);
    if (ours >= 2) {
      state_ = State::AwaitSetup;
    } else {
      state_ = State::Active;
      observer_.onSessionReady(*this, version_);
    }
    return;
  }
  if (major != 1 && major != 2) {
    fail(Fault(codes::kBadVersion, "device offered mux version " + std::to_string(major) + "." +
                                       std::to_string(minor) + "; only 1 and 2 exist"));
    return;
  }
  version_ = int(major);
  headerSize_ = headerSizeFor(version_);
  stream_.setHeaderSize(headerSize_);
  observer_.onSessionLog(*this, LogLevel::Info,
                         "Connected to v" + std::to_string(major) + "." + std::to_string(minor) +
                             " device");
  if (version_ >= 2) {
    // SETUP restarts the sequence fields: tx 0, rx 0xFFFF.
    txSeq_ = 0;
    rxSeq_ = 0xFFFF;
    core::OutPacket setup = newPacket(1);
    setup.data()[headerSize_] = kSetupLogLevel;
    sendPacket(kProtoSetup, std::move(setup));
  }
  state_ = State::Active;
  observer_.onSessionReady(*this, version_);
}

void DeviceSession::handleSetup(const uint8_t* body, size_t len) {
  if (options_.role != Role::Device || state_ != State::AwaitSetup) {
    observer_.onSessionLog(*this, LogLevel::Warning, "unexpected SETUP packet");
    return;
  }
  state_ = State::Active;
  observer_.onSessionReady(*this, version_);
  if (len >= 1 && body[0] >= kSetupLogLevel) {
    controlLog(kControlInfo, "AppleUSBDeviceMux::setPropertiesGated setting debug level to " +
                                 std::to_string(body[0]));
  }
}

bool DeviceSession::rateAllows(uint64_t& windowStart, uint32_t& count, uint32_t limit) {
  uint64_t now = core::EventLoop::nowMs();
  if (now - windowStart >= 1000) {
    windowStart = now;
    count = 0;
  }
  return ++count <= limit;
}

void DeviceSession::handleControl(const uint8_t* body, size_t len) {
  EngineStats::add(stats_.controlIn, 1);
  if (options_.role != Role::Host || len == 0) return;
  // A device that floods its log must not flood ours.
  if (!rateAllows(logWindowStart_, logCount_, kLogLinesPerSecond)) {
    ++suppressedLogs_;
    EngineStats::add(stats_.logsSuppressed, 1);
    return;
  }
  if (suppressedLogs_ > 0) {
    observer_.onSessionLog(*this, LogLevel::Warning,
                           std::to_string(suppressedLogs_) + " device log lines suppressed");
    suppressedLogs_ = 0;
  }
  std::string text(reinterpret_cast<const char*>(body + 1), len - 1);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  LogLevel level = body[0] == kControlError     ? LogLevel::Error
                   : body[0] == kControlInfo    ? LogLevel::Info
                                                : LogLevel::Warning;
  if (body[0] != kControlError && body[0] != kControlWarning && body[0] != kControlInfo) {
    text = "unknown CONTROL type " + std::to_string(body[0]) + ": " + text;
  }
  observer_.onSessionLog(*this, level, "device: " + text);
}

void DeviceSession::handleTcp(const uint8_t* body, size_t len, bool inTransfer) {
  if (state_ != State::Active) return;  // as usbmuxd: TCP before the handshake is dropped
  TcpHeader th;
  Fault f = readTcpHeader(body, len, th);
  if (f) {
    if (options_.role == Role::Host) {
      fail(f);
    } else {
      controlLog(kControlError, f.message);
    }
    return;
  }
  if (th.flags & kRst) EngineStats::add(stats_.rstsIn, 1);
  const uint8_t* payload = body + kTcpHeaderSize;
  size_t payloadLen = len - kTcpHeaderSize;
  uint32_t key = (uint32_t(th.dport) << 16) | th.sport;
  auto it = conns_.find(key);
  if (it == conns_.end()) {
    if (options_.role == Role::Device && th.flags == kSyn) {
      auto conn = loop_.makeRetiring<Connection>(*this, allocateConnectionId(), Role::Device,
                                               th.dport, th.sport, options_.window);
      conns_[key] = conn;
      conn->acceptSyn(th);
      observer_.onIncomingConnection(*this, conn);
      return;
    }
    if (!(th.flags & kRst)) sendAnonymousRst(th);
    return;
  }
  std::shared_ptr<Connection> conn = it->second;  // stays alive through teardown
  conn->onSegment(th, payload, payloadLen, inTransfer);
}

void DeviceSession::sendAnonymousRst(const TcpHeader& th) {
  // Kills a stale connection the peer still believes in.
  if (!rateAllows(rstWindowStart_, rstCount_, kAnonymousRstsPerSecond)) return;
  TcpHeader rst;
  rst.sport = th.dport;
  rst.dport = th.sport;
  rst.seq = 0;
  rst.ack = th.seq;
  rst.flags = kRst;
  rst.window = 0;
  sendTcp(newPacket(kTcpHeaderSize), rst);
}

}  // namespace tsmuxd::mux
