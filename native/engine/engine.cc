#include "engine/engine.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tsmuxd::engine {

Engine::Engine(EventSink& sink) : sink_(sink) {}

Engine::~Engine() { stop(); }

void Engine::start() {
  if (started_) return;
  started_ = true;
  loop_.start("tsmuxd-data");
}

void Engine::stop() {
  if (!started_) return;
  started_ = false;
  loop_.stop([this] {
    stopAllCaptures();
    closeAllTunnels();
    for (auto& o : opening_) o.second->cancel();
    opening_.clear();
    for (auto& l : listeners_) l.second->close();
    for (auto& d : doors_) d.second->close();
    doors_.clear();
    for (auto& h : hosted_) h->close();
    hosted_.clear();
    // Links first: a FunctionFS transport cancels its requests on endpoint
    // files its function still holds open.
    for (auto& l : links_) l.second->shutdown();
    for (auto& f : ffs_) f.second.function->close();
    std::vector<std::shared_ptr<mux::Connection>> left;
    for (auto& c : conns_) left.push_back(c.second);
    for (auto& c : left) c->reset("the daemon is stopping");
    for (auto& sp : splices_) sp.second->close();
    splices_.clear();
    listeners_.clear();
    ffs_.clear();
    links_.clear();
    conns_.clear();
    waitingClients_.clear();
    // Cancelled transfers come back within a turn or two; a stuck one is
    // leaked after a second rather than holding the daemon's exit.
    if (usb_) usb_->shutdown(1000);
  });
  // Abandoned above; their last post (captureDone) will not run now.
  for (auto& c : captures_) c.second->join();
  captures_.clear();
  tunnel::Stack::release(this);
}

uint32_t Engine::listenCable(const std::string& path, std::string& error) {
  int fd = usb::CableTransport::listenPath(path, error);
  if (fd < 0) return 0;
  uint32_t id = nextListener_++;
  loop_.post([this, fd, id] {
    listeners_[id] = loop_.makeRetiring<core::Acceptor>(loop_, fd, [this](int c) {
      usb::CableTransport::tuneSocket(c);
      acceptCable(c);
    });
  });
  return id;
}

void Engine::closeListener(uint32_t id) {
  loop_.post([this, id] {
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return;
    it->second->close();
    listeners_.erase(it);  // freed after the turn (makeRetiring)
  });
}

void Engine::acceptCable(int fd) {
  uint32_t handle = nextHandle_++;
  auto transport = std::make_unique<usb::CableTransport>(loop_, pool_, stats_, fd);
  auto link = loop_.makeRetiring<DeviceLink>(*this, handle, mux::Role::Host, std::move(transport));
  links_[handle] = link;
  link->transport().setReading(true);  // for the descriptor
}

DeviceLink* Engine::findLink(uint32_t handle) {
  auto it = links_.find(handle);
  return it == links_.end() ? nullptr : it->second.get();
}

void Engine::openDevice(uint32_t handle, uint32_t window, uint16_t maxPacketSize,
                        uint64_t zeroWindowTimeoutMs) {
  loop_.post([this, handle, window, maxPacketSize, zeroWindowTimeoutMs] {
    DeviceLink* link = findLink(handle);
    if (!link || link->session()) return;
    link->transport().setMaxPacketSize(maxPacketSize);
    mux::SessionOptions options;
    options.role = mux::Role::Host;
    options.window = window;
    options.zeroWindowTimeoutMs = zeroWindowTimeoutMs;
    link->startSession(options);
  });
}

void Engine::mapDevicePort(uint32_t handle, uint16_t port, std::optional<LocalTarget> target) {
  loop_.post([this, handle, port, target = std::move(target)] {
    DeviceLink* link = findLink(handle);
    if (!link || link->role() != mux::Role::Device) return;
    if (target) link->ports().map(port, *target);
    else link->ports().unmap(port);
  });
}

void Engine::closeDevice(uint32_t handle, bool unplugged) {
  loop_.post([this, handle, unplugged] {
    NativeEvent ev(NativeEvent::Type::Detached);
    ev.handle = handle;
    ev.code = unplugged ? codes::kUnplugged : "ERR_CLOSED";
    ev.text = unplugged ? "unplugged" : "closed by the daemon";
    auto opening = opening_.find(handle);
    if (opening != opening_.end()) {
      opening->second->cancel();
      opening_.erase(opening);  // freed after the turn (makeRetiring)
      emit(std::move(ev));
      return;
    }
    bool hadLink = false;
    auto it = links_.find(handle);
    if (it != links_.end()) {
      hadLink = true;
      std::shared_ptr<DeviceLink> link = it->second;
      links_.erase(it);
      if (unplugged) link->lost("device unplugged");
      else link->shutdown();
    }
    // After the link: its transport cancels requests on the function's files.
    // Closing ep0 takes the function off the gadget: the host sees an unplug.
    closeFfs(handle);
    if (hadLink) emit(std::move(ev));
  });
}

void Engine::linkClosed(DeviceLink& link, const Fault& why) {
  auto it = links_.find(link.handle());
  if (it == links_.end()) return;
  std::shared_ptr<DeviceLink> keep = it->second;
  links_.erase(it);
  keep->lost(why.message);
  NativeEvent ev(NativeEvent::Type::Detached);
  ev.handle = link.handle();
  ev.code = why.code ? why.code : codes::kUnplugged;
  ev.text = why.message;
  emit(std::move(ev));
}

uint32_t Engine::attachDeviceRole(const std::string& cablePath,
                                  const usb::CableDescriptor& descriptor,
                                  const DeviceRoleOptions& options, std::string& error) {
  int fd = usb::CableTransport::connectPath(cablePath, error);
  if (fd < 0) return 0;
  std::vector<uint8_t> desc = usb::encodeCableDescriptor(descriptor);
  if (send(fd, desc.data(), desc.size(), MSG_NOSIGNAL) != ssize_t(desc.size())) {
    error = std::string("cannot send the cable descriptor: ") + strerror(errno);
    ::close(fd);
    return 0;
  }
  uint16_t maxPacket = 512;
  for (const auto& c : descriptor.configurations) {
    for (const auto& i : c.interfaces) {
      for (const auto& e : i.endpoints) {
        if (!(e.address & 0x80) && e.maxPacketSize) maxPacket = e.maxPacketSize;
      }
    }
  }
  uint32_t handle = nextHandle_++;
  loop_.post([this, fd, handle, maxPacket, options] {
    auto transport = std::make_unique<usb::CableTransport>(loop_, pool_, stats_, fd);
    transport->setMaxPacketSize(maxPacket);
    startDeviceSession(handle, std::move(transport), options);
  });
  return handle;
}

void Engine::startDeviceSession(uint32_t handle, std::unique_ptr<usb::Transport> transport,
                                const DeviceRoleOptions& options) {
  auto link = loop_.makeRetiring<DeviceLink>(*this, handle, mux::Role::Device, std::move(transport));
  link->ports().setDefaultLoopback(options.defaultLoopback);
  for (const auto& m : options.portMap) link->ports().map(m.first, m.second);
  links_[handle] = link;
  mux::SessionOptions so;
  so.role = mux::Role::Device;
  so.window = options.window;
  so.deviceVersion = options.version;
  so.controlLogs = options.controlLogs;
  // A phone waits on a host that stops reading for as long as it takes (the
  // host's own client may simply be paused); the limit is the daemon's.
  so.zeroWindowTimeoutMs = 0;
  link->startSession(so);
}

void Engine::emitLog(uint32_t handle, const char* level, std::string text) {
  NativeEvent ev(NativeEvent::Type::Log);
  ev.handle = handle;
  ev.level = level;
  ev.text = std::move(text);
  emit(std::move(ev));
}

void Engine::host(std::shared_ptr<HostedService> service) {
  loop_.post([this, service] {
    hosted_.push_back(service);
    service->start();
  });
}

}  // namespace tsmuxd::engine
