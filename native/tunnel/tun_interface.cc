#include "tunnel/tun_interface.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>  // before the linux/ headers, which defer to it
#include <linux/if_addr.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace tsmuxd::tunnel {

namespace {

// One rtnetlink request: a header, the family's fixed part, a few attributes.
constexpr size_t kNetlinkRequestSize = 256;
// An answer to one request: an ack or an error carrying our request back.
constexpr size_t kNetlinkAnswerSize = 4096;

std::string failed(const char* step, int err) { return std::string(step) + ": " + std::strerror(err); }

class NetlinkRequest {
 public:
  NetlinkRequest(uint16_t type, uint16_t flags) {
    std::memset(buffer_, 0, sizeof buffer_);
    header()->nlmsg_len = NLMSG_LENGTH(0);
    header()->nlmsg_type = type;
    header()->nlmsg_flags = uint16_t(NLM_F_REQUEST | NLM_F_ACK | flags);
    header()->nlmsg_seq = 1;
  }
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }
  // The family's fixed part (ifinfomsg, ifaddrmsg) right after the header.
  template <class T>
  T* body() {
    header()->nlmsg_len = NLMSG_LENGTH(sizeof(T));
    return reinterpret_cast<T*>(NLMSG_DATA(header()));
  }
  void attribute(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(header()->nlmsg_len);
    // Every request here is a handful of fixed-size attributes well under the buffer.
    if (at + RTA_SPACE(len) > sizeof buffer_) return;
    auto* rta = reinterpret_cast<rtattr*>(buffer_ + at);
    rta->rta_type = type;
    rta->rta_len = uint16_t(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    header()->nlmsg_len = uint32_t(at + RTA_SPACE(len));
  }

 private:
  alignas(nlmsghdr) char buffer_[kNetlinkRequestSize];
};

// Sends one request and waits for its ack; 0, or the errno the kernel gave.
int talk(int sock, NetlinkRequest& request) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(sock, request.header(), request.header()->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) < 0) {
    return errno;
  }
  alignas(nlmsghdr) char answer[kNetlinkAnswerSize];
  for (;;) {
    ssize_t n = recv(sock, answer, sizeof answer, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(answer); NLMSG_OK(h, size_t(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EPROTO;
      auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
      return -e->error;  // 0 is the ack
    }
  }
}

// Best effort: no link-local address, so the kernel sends no router or
// neighbour solicitations from one into the tunnel (a phone drops them).
void noLinkLocal(const std::string& name) {
  std::string path = "/proc/sys/net/ipv6/conf/" + name + "/addr_gen_mode";
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)!::write(fd, "1", 1);
  ::close(fd);
}

bool bringUp(int sock, int index, uint32_t mtu, std::string& error) {
  NetlinkRequest link(RTM_NEWLINK, 0);
  auto* info = link.body<ifinfomsg>();
  info->ifi_family = AF_UNSPEC;
  info->ifi_index = index;
  info->ifi_flags = IFF_UP;
  info->ifi_change = IFF_UP;
  link.attribute(IFLA_MTU, &mtu, sizeof mtu);
  if (int err = talk(sock, link)) {
    error = failed("setting the MTU and bringing the link up (RTM_NEWLINK)", err);
    return false;
  }
  return true;
}

bool addAddress(int sock, int index, const TunSetup& setup, std::string& error) {
  NetlinkRequest address(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = address.body<ifaddrmsg>();
  ifa->ifa_family = AF_INET6;
  ifa->ifa_prefixlen = setup.prefixLength;
  ifa->ifa_flags = IFA_F_NODAD;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = uint32_t(index);
  address.attribute(IFA_LOCAL, setup.address.addr, 16);
  address.attribute(IFA_ADDRESS, setup.address.addr, 16);
  uint32_t flags = IFA_F_NODAD;
  address.attribute(IFA_FLAGS, &flags, sizeof flags);
  if (int err = talk(sock, address)) {
    error = failed("adding the tunnel address (RTM_NEWADDR)", err);
    return false;
  }
  return true;
}

}  // namespace

int openTunInterface(const TunSetup& setup, std::string& name, std::string& error) {
  if (setup.namePattern.empty() || setup.namePattern.size() > kMaxInterfaceName) {
    error = "the interface name pattern must be 1-" + std::to_string(kMaxInterfaceName) + " characters";
    return -1;
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    error = failed("opening /dev/net/tun", errno);
    return -1;
  }
  ifreq request{};
  request.ifr_flags = IFF_TUN | IFF_NO_PI;  // bare IPv6 packets, as the tunnel carries them
  std::memcpy(request.ifr_name, setup.namePattern.data(), setup.namePattern.size());
  if (ioctl(fd, TUNSETIFF, &request) < 0) {
    error = failed("making the interface (TUNSETIFF)", errno);
    ::close(fd);
    return -1;
  }
  name.assign(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));
  int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sock < 0) {
    error = failed("opening rtnetlink", errno);
    ::close(fd);
    return -1;
  }
  // A reply that never comes must not hold the JS thread.
  timeval timeout{2, 0};
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  int index = int(if_nametoindex(name.c_str()));
  if (index == 0) error = failed("finding the interface's index", errno);
  noLinkLocal(name);
  bool ok = index > 0 && bringUp(sock, index, setup.mtu, error) && addAddress(sock, index, setup, error);
  ::close(sock);
  if (!ok) {
    ::close(fd);  // the interface goes with it
    return -1;
  }
  return fd;
}

}  // namespace tsmuxd::tunnel
