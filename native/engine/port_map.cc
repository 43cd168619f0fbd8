#include "engine/port_map.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tsmuxd::engine {

std::shared_ptr<InProcessService> PortMap::takeService(uint16_t port) {
  auto it = ports_.find(port);
  if (it == ports_.end() || !it->second.service) return nullptr;
  std::shared_ptr<InProcessService> service = it->second.service;
  if (it->second.once) ports_.erase(it);
  return service;
}

int PortMap::openLocal(uint16_t port, bool& connecting, int& error) {
  LocalTarget target;
  auto it = ports_.find(port);
  if (it != ports_.end()) {
    target = it->second;
    if (target.once) ports_.erase(it);
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

}  // namespace tsmuxd::engine
