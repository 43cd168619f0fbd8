#include "pipe/device_link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pipe/engine.h"

namespace tsmuxd::pipe {

DeviceLink::DeviceLink(Engine& engine, uint32_t handle, mux::Role role,
                       std::unique_ptr<usb::Transport> transport)
    : engine_(engine), handle_(handle), role_(role), transport_(std::move(transport)) {
  transport_->setHandler(this);
  EngineStats::add(engine_.stats().devicesActive, 1);
}

DeviceLink::~DeviceLink() {
  transport_->close();
  EngineStats::sub(engine_.stats().devicesActive, 1);
}

void DeviceLink::startSession(const mux::SessionOptions& options) {
  if (session_) return;
  session_ = std::make_unique<mux::DeviceSession>(engine_.loop(), engine_.pool(), engine_.stats(),
                                                  *transport_, engine_, handle_, options);
  session_->start();
  transport_->setReading(true);
}

void DeviceLink::shutdown() {
  if (session_) session_->resetAll("device closed by the daemon");
  transport_->close();  // flushes what it can (the RSTs) first
  if (session_) session_->peerGone("device closed by the daemon");
}

void DeviceLink::lost(const std::string& reason) {
  transport_->close();
  if (session_) session_->peerGone(reason);
}

void DeviceLink::onTransfer(const uint8_t* data, size_t len) {
  if (session_) {
    session_->onTransfer(data, len);
    return;
  }
  if (described_ || len == 0) return;
  // Host role, before the control plane accepted the device: the first
  // transfer describes it, and nothing more is read until it is opened.
  auto descriptor = std::make_shared<usb::CableDescriptor>();
  Fault f = usb::decodeCableDescriptor(data, len, *descriptor);
  if (f) {
    engine_.linkClosed(*this, f);
    return;
  }
  described_ = true;
  transport_->setReading(false);
  NativeEvent ev(NativeEvent::Type::Attached);
  ev.handle = handle_;
  ev.descriptor = std::move(descriptor);
  engine_.emit(std::move(ev));
}

void DeviceLink::onTransferBatchEnd() {
  if (session_) session_->onTransferBatchEnd();
}

void DeviceLink::onTransportDrained() {
  if (session_) session_->onTransportDrained();
}

void DeviceLink::onTransportClosed(const Fault& why) { engine_.linkClosed(*this, why); }

std::optional<sim::TestServiceKind> DeviceLink::takeBuiltin(uint16_t port) {
  auto it = portMap_.find(port);
  if (it == portMap_.end() || !it->second.builtin) return std::nullopt;
  std::optional<sim::TestServiceKind> kind = it->second.builtin;
  if (it->second.once) portMap_.erase(it);
  return kind;
}

int DeviceLink::openLocal(uint16_t port, bool& connecting, int& error) {
  LocalTarget target;
  auto it = portMap_.find(port);
  if (it != portMap_.end()) {
    target = it->second;
    if (target.once) portMap_.erase(it);
  } else if (defaultLoopback_) {
    target.host = "127.0.0.1";
    target.port = port;
  } else {
    error = ECONNREFUSED;
    return -1;
  }
  connecting = false;
  int fd;
  int r;
  if (!target.path.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (target.path.size() >= sizeof addr.sun_path) {
      error = ENAMETOOLONG;
      return -1;
    }
    std::memcpy(addr.sun_path, target.path.data(), target.path.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno;
      return -1;
    }
    r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(target.port);
    if (inet_pton(AF_INET, target.host.c_str(), &addr.sin_addr) != 1) {
      error = EINVAL;
      return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = errno;
      return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (r == 0) {
    error = 0;
    return fd;
  }
  if (errno == EINPROGRESS) {
    connecting = true;
    error = 0;
    return fd;
  }
  error = errno == EAGAIN ? ECONNREFUSED : errno;
  ::close(fd);
  return -1;
}

}  // namespace tsmuxd::pipe
