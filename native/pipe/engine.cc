#include "pipe/engine.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "pipe/fd_pump.h"
#include "sim/builtin_io.h"
#include "usb/ffs.h"
#include "usb/libusb_transport.h"

namespace tsmuxd::pipe {

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
    for (auto& o : opening_) o.second->cancel();
    opening_.clear();
    for (auto& l : listeners_) l.second->close();
    for (auto& t : testServices_) t->close();
    testServices_.clear();
    // Links first: a FunctionFS transport cancels its requests on endpoint
    // files its function still holds open.
    for (auto& l : links_) l.second->shutdown();
    for (auto& f : ffs_) {
      f.second.raw.reset();
      f.second.function->close();
    }
    std::vector<std::shared_ptr<mux::Connection>> left;
    for (auto& c : conns_) left.push_back(c.second);
    for (auto& c : left) c->reset("the daemon is stopping");
    listeners_.clear();
    ffs_.clear();
    links_.clear();
    conns_.clear();
    // Cancelled transfers come back within a turn or two; a stuck one is
    // leaked after a second rather than holding the daemon's exit.
    if (usb_) usb_->shutdown(1000);
  });
}

uint32_t Engine::listenCable(const std::string& path, std::string& error) {
  int fd = usb::CableTransport::listenPath(path, error);
  if (fd < 0) return 0;
  uint32_t id = nextListener_++;
  loop_.post([this, fd, id] {
    listeners_[id] = std::make_shared<usb::CableListener>(loop_, fd,
                                                          [this](int c) { acceptCable(c); });
  });
  return id;
}

void Engine::closeListener(uint32_t id) {
  loop_.post([this, id] {
    auto it = listeners_.find(id);
    if (it == listeners_.end()) return;
    it->second->close();
    loop_.retire(it->second);
    listeners_.erase(it);
  });
}

void Engine::acceptCable(int fd) {
  uint32_t handle = nextHandle_++;
  auto transport = std::make_unique<usb::CableTransport>(loop_, pool_, stats_, fd);
  auto link = std::make_shared<DeviceLink>(*this, handle, mux::Role::Host, std::move(transport));
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
    if (target) link->mapPort(port, *target);
    else link->unmapPort(port);
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
      loop_.retire(opening->second);
      opening_.erase(opening);
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
      loop_.retire(link);
    }
    // After the link: its transport cancels requests on the function's files.
    // Closing ep0 takes the function off the gadget: the host sees an unplug.
    auto f = ffs_.find(handle);
    if (f != ffs_.end()) {
      f->second.raw.reset();
      f->second.function->close();
      loop_.retire(f->second.function);
      ffs_.erase(f);
    }
    if (hadLink) emit(std::move(ev));
  });
}

bool Engine::startUsb(std::string& error) {
  if (usb_) return true;
  auto log = [this](const char* level, const std::string& text) {
    NativeEvent ev(NativeEvent::Type::Log);
    ev.level = level;
    ev.text = text;
    emit(std::move(ev));
  };
  usb_ = usb::LibusbContext::create(loop_, log, error);
  if (!usb_) return false;
  loop_.post([this] { usb_->attach(); });
  return true;
}

uint32_t Engine::openUsb(const usb::UsbOpenRequest& request) {
  uint32_t handle = nextHandle_++;
  loop_.post([this, handle, request] {
    if (!usb_) {
      NativeEvent ev(NativeEvent::Type::Detached);
      ev.handle = handle;
      ev.code = codes::kUsbUnavailable;
      ev.text = "libusb is not started";
      emit(std::move(ev));
      return;
    }
    auto opener = std::make_shared<usb::LibusbOpener>(
        *usb_, request,
        [this, handle, request](std::unique_ptr<usb::LibusbDevice> device,
                                std::shared_ptr<usb::CableDescriptor> descriptor, const Fault& f) {
          usbOpened(handle, request, std::move(device), std::move(descriptor), f);
        });
    opening_[handle] = opener;
    opener->start();
  });
  return handle;
}

void Engine::usbOpened(uint32_t handle, const usb::UsbOpenRequest& request,
                       std::unique_ptr<usb::LibusbDevice> device,
                       std::shared_ptr<usb::CableDescriptor> descriptor, const Fault& fault) {
  auto it = opening_.find(handle);
  if (it == opening_.end()) {
    // Cancelled meanwhile: never close a handle here (this may run inside a
    // libusb callback); the context's drain does it.
    if (device) usb_->retire(std::move(device));
    return;
  }
  // Possibly inside the opener's own libusb callback: keep it alive to the
  // end of the turn.
  loop_.retire(it->second);
  opening_.erase(it);
  if (fault) {
    NativeEvent ev(NativeEvent::Type::Detached);
    ev.handle = handle;
    ev.code = fault.code;
    ev.text = fault.message;
    emit(std::move(ev));
    return;
  }
  auto transport =
      std::make_unique<usb::LibusbTransport>(*usb_, stats_, std::move(device), request.endpoints);
  auto link = std::make_shared<DeviceLink>(*this, handle, mux::Role::Host, std::move(transport));
  link->markDescribed();
  links_[handle] = link;
  NativeEvent ev(NativeEvent::Type::Attached);
  ev.handle = handle;
  ev.descriptor = std::move(descriptor);
  ev.link = "usb";
  ev.locationId = (uint32_t(request.bus) << 16) | request.address;
  emit(std::move(ev));
}

void Engine::linkClosed(DeviceLink& link, const Fault& why) {
  auto it = links_.find(link.handle());
  if (it == links_.end()) return;
  std::shared_ptr<DeviceLink> keep = it->second;
  links_.erase(it);
  keep->lost(why.message);
  loop_.retire(keep);
  NativeEvent ev(NativeEvent::Type::Detached);
  ev.handle = link.handle();
  ev.code = why.code ? why.code : codes::kUnplugged;
  ev.text = why.message;
  emit(std::move(ev));
}

uint32_t Engine::connect(uint32_t handle, uint16_t port, uint64_t timeoutMs) {
  uint32_t id = mux::allocateConnectionId();
  loop_.post([this, handle, port, timeoutMs, id] {
    DeviceLink* link = findLink(handle);
    Fault fault(codes::kNoDevice, "no such device");
    std::shared_ptr<mux::Connection> conn;
    if (link && link->session() && link->role() == mux::Role::Host) {
      fault = Fault();
      conn = link->session()->connect(id, port, timeoutMs, fault);
    }
    if (!conn) {
      NativeEvent ev(NativeEvent::Type::ConnectFailed);
      ev.handle = handle;
      ev.conn = id;
      ev.code = fault.code == codes::kNoConnection ? "ENOPORT" : "ENODEV";
      ev.text = fault.message;
      emit(std::move(ev));
      return;
    }
    conns_[id] = conn;
  });
  return id;
}

bool Engine::attachClient(uint32_t connId, int fd, std::vector<uint8_t> pipelined,
                          std::string& error) {
  // Our own descriptor for the client's socket, so JS can close its handle.
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) {
    error = std::string("cannot duplicate the client socket: ") + strerror(errno);
    return false;
  }
  fcntl(own, F_SETFL, fcntl(own, F_GETFL) | O_NONBLOCK);
  loop_.post([this, connId, own, bytes = std::move(pipelined)]() mutable {
    auto it = conns_.find(connId);
    if (it == conns_.end() || it->second->state() == mux::Connection::State::Closed ||
        it->second->hasIo()) {
      ::close(own);  // the client sees EOF; the connection is already gone
      return;
    }
    auto pump = std::make_shared<FdPump>(loop_, own, false);
    pump->setPipelined(std::move(bytes));
    pump->bind(it->second.get());
    it->second->setIo(pump);
  });
  return true;
}

void Engine::closeConnection(uint32_t connId) {
  loop_.post([this, connId] {
    auto it = conns_.find(connId);
    if (it != conns_.end()) it->second->reset("closed by the daemon");
  });
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
  auto link = std::make_shared<DeviceLink>(*this, handle, mux::Role::Device, std::move(transport));
  link->setDefaultLoopback(options.defaultLoopback);
  for (const auto& m : options.portMap) link->mapPort(m.first, m.second);
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

// ---- session observer ----

void Engine::onSessionReady(mux::DeviceSession& s, int version) {
  NativeEvent ev(NativeEvent::Type::Ready);
  ev.handle = s.handle();
  ev.version = version;
  emit(std::move(ev));
}

void Engine::onSessionLog(mux::DeviceSession& s, mux::LogLevel level, const std::string& text) {
  NativeEvent ev(NativeEvent::Type::Log);
  ev.handle = s.handle();
  ev.level = mux::logLevelName(level);
  ev.text = text;
  emit(std::move(ev));
}

void Engine::onSessionFailed(mux::DeviceSession& s, const Fault& why) {
  DeviceLink* link = findLink(s.handle());
  if (link) linkClosed(*link, why);
}

void Engine::onIncomingConnection(mux::DeviceSession& s,
                                  const std::shared_ptr<mux::Connection>& conn) {
  conns_[conn->id()] = conn;
  DeviceLink* link = findLink(s.handle());
  if (std::optional<sim::TestServiceKind> builtin = link ? link->takeBuiltin(conn->localPort()) : std::nullopt) {
    auto io = std::make_shared<sim::BuiltinServiceIo>(loop_, *builtin);
    conn->setIo(io);
    io->start(conn.get());
    return;
  }
  bool connecting = false;
  int error = ECONNREFUSED;
  int fd = link ? link->openLocal(conn->localPort(), connecting, error) : -1;
  if (fd < 0) {
    conn->localConnectFailed(error);
    return;
  }
  auto pump = std::make_shared<FdPump>(loop_, fd, true);
  pump->bind(conn.get());
  conn->setIo(pump);
  if (!connecting) pump->connectDone(0);
}

void Engine::forgetConnection(mux::Connection& c) {
  auto it = conns_.find(c.id());
  if (it == conns_.end()) return;
  loop_.retire(it->second);
  conns_.erase(it);
}

void Engine::onConnected(mux::Connection& c) {
  NativeEvent ev(NativeEvent::Type::Connected);
  ev.handle = c.handle();
  ev.conn = c.id();
  emit(std::move(ev));
}

void Engine::onConnectFailed(mux::Connection& c, const char* code, const std::string& reason) {
  if (c.role() == mux::Role::Host) {
    NativeEvent ev(NativeEvent::Type::ConnectFailed);
    ev.handle = c.handle();
    ev.conn = c.id();
    ev.code = code;
    ev.text = reason;
    emit(std::move(ev));
  }
  forgetConnection(c);
}

void Engine::onConnectionClosed(mux::Connection& c, const std::string& reason) {
  if (c.role() == mux::Role::Host) {
    NativeEvent ev(NativeEvent::Type::Closed);
    ev.conn = c.id();
    ev.text = reason;
    ev.bytesIn = c.bytesIn();
    ev.bytesOut = c.bytesOut();
    emit(std::move(ev));
  }
  forgetConnection(c);
}

void Engine::onConnectionLog(mux::Connection& c, const std::string& text) {
  NativeEvent ev(NativeEvent::Type::Log);
  ev.handle = c.handle();
  ev.conn = c.id();
  ev.level = "warning";
  ev.text = "connection " + std::to_string(c.id()) + " (port " +
            std::to_string(c.role() == mux::Role::Host ? c.remotePort() : c.localPort()) +
            "): " + text;
  emit(std::move(ev));
}

}  // namespace tsmuxd::pipe
