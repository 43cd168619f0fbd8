#pragma once
// One CoreDeviceProxy tunnel: the local end of a mux connection that carries
// TLS, the CDTunnel handshake, then bare IPv6 packets, and the lwIP netif
// those packets go in and out of. Both roles: the daemon's (host: TLS
// client, asks for the tunnel) and the sim's (device: TLS server, grants it
// and serves tunnel TCP ports).
//
// Bytes: mux payload -> TLS (memory BIOs) -> framer -> ip6_input, and
// netif output -> one TLS record per packet -> one mux packet per record.
// Nothing of it crosses into JS; JS sees the handshake body once and the
// tunnel's end.
//
// Lifetime: the engine's tunnel map owns a Tunnel (made retiring), the mux
// connection holds it as its ConnectionIo, each Stream is owned by the
// tunnel's stream map. lwIP holds raw pointers (netif state, pcb args) that
// are cleared before the object goes. Everything runs on the event thread.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "lwip/ip6_addr.h"
#include "lwip/netif.h"
}

#include "core/capture_ring.h"
#include "core/event_loop.h"
#include "mux/connection.h"
#include "tunnel/cdtunnel_frame.h"
#include "tunnel/ipv6_framer.h"
#include "tunnel/preamble_listener.h"
#include "tunnel/stack.h"
#include "tunnel/tls_channel.h"
#include "tunnel/tun_interface.h"

struct tcp_pcb;

namespace tsmuxd::tunnel {

class Tunnel;
class Stream;

// Where a tunnel TCP port goes on the device side.
struct PortTarget {
  std::string host;  // TCP when path is empty
  uint16_t port = 0;
  std::string path;  // a Unix socket
};

struct TunnelConfig {
  ip6_addr_t localAddress{};
  ip6_addr_t peerAddress{};
  uint32_t mtu = 1280;
  uint16_t sendMss = 0;  // 0: kDefaultSendMss (host) or mtu - 60 (device)
  std::string response;  // device: the serverHandshakeResponse body
  std::map<uint16_t, PortTarget> ports;
  // Device role strictness (the sim).
  uint32_t dropOversize = 0;  // 0: off
  double lossRate = 0;
};

// Counters a tunnel keeps (read for logs and snapshots).
struct TunnelCounters {
  uint64_t packetsIn = 0;
  uint64_t packetsOut = 0;
  uint64_t bytesIn = 0;   // IPv6 bytes from the peer
  uint64_t bytesOut = 0;  // IPv6 bytes to the peer
  uint64_t droppedQueueFull = 0;
  uint64_t droppedOversize = 0;
  uint64_t droppedLoss = 0;
  uint64_t droppedMalformed = 0;  // headers cut short (ipv6_guard.h)
  uint64_t droppedOverMtu = 0;    // lwIP's own packets over the MTU
  // TUN mode (host): packets handed to the kernel and taken from it.
  uint64_t packetsToKernel = 0;
  uint64_t packetsFromKernel = 0;
  uint64_t droppedKernelFull = 0;     // the TUN's queue was full
  uint64_t droppedKernelFiltered = 0; // not ours to send: multicast, foreign source, over the MTU
};

class TunnelObserver {
 public:
  virtual ~TunnelObserver() = default;
  virtual void onTunnelHandshake(Tunnel& t, const std::string& body) = 0;
  virtual void onTunnelClosed(Tunnel& t, const char* code, const std::string& reason) = 0;
  virtual void onTunnelLog(Tunnel& t, const char* level, const std::string& text) = 0;
  virtual void onStreamConnected(Tunnel& t, uint32_t stream) = 0;
  virtual void onStreamConnectFailed(Tunnel& t, uint32_t stream, const char* code, const std::string& reason) = 0;
  virtual void onStreamClosed(Tunnel& t, uint32_t stream, const std::string& reason, uint64_t bytesIn,
                              uint64_t bytesOut) = 0;
};

class Tunnel : public mux::ConnectionIo, public core::Deferred, public std::enable_shared_from_this<Tunnel> {
 public:
  enum class Role { Host, Device };
  enum class State { Tls, AwaitFrame, AwaitConfig, Running, Closed };

  Tunnel(core::EventLoop& loop, Stack& stack, TunnelObserver& observer, Role role, uint32_t id,
         uint32_t handle, std::unique_ptr<TlsChannel> tls, std::string request);
  ~Tunnel() override;

  uint32_t id() const { return id_; }
  uint32_t handle() const { return handle_; }
  Role role() const { return role_; }
  State state() const { return state_; }
  const TunnelCounters& counters() const { return counters_; }

  static const char* stateName(State s);

  // Binds to its mux connection and starts TLS.
  void start(mux::Connection* conn);
  // After onTunnelHandshake: brings the netif up (device: answers first).
  bool configure(TunnelConfig config, std::string& error);
  // Host: a TCP connection `id` to [address]:port inside the tunnel.
  bool connect(uint32_t id, const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs, std::string& error);
  // Host: the same for a socket whose preamble named the destination; the
  // socket is closed if the connect fails. JS hears nothing of it.
  void connectSocket(int fd, const ip6_addr_t& address, uint16_t port);
  // Host: a preamble listener that lives as long as the tunnel.
  void addPreambleListener(std::shared_ptr<PreambleListener> listener);
  // Host, TUN mode: the tunnel's kernel interface (tun_interface.h), owned
  // from here on. Packets for the host that lwIP does not own (every TCP
  // port below kLwipLocalPortFirst, ICMPv6) go to the kernel, and what the
  // kernel sends from the tunnel address goes into the tunnel.
  void attachTun(int fd, std::string name);
  const std::string& tunName() const { return tunName_; }
  Stream* findStream(uint32_t id);
  // Ends the tunnel: the netif goes, the mux connection is reset with
  // `reason`, and each stream either writes what it holds to its socket
  // first (`drainStreams`) or is closed at once (the engine is stopping).
  void close(const char* code, const std::string& reason, bool drainStreams = true);

  // mux::ConnectionIo
  size_t offer(const struct iovec* iov, int count) override;
  void inboundReady() override { loop_.defer(this); }
  void sendReady() override { loop_.defer(this); }
  void finish() override;
  void abort() override;
  bool outputWaiting() override { return !queue_.empty(); }
  void runDeferred() override;

  // For streams.
  core::EventLoop& loop() { return loop_; }
  struct netif* netif() { return &netif_; }
  uint16_t sendMss() const { return config_.sendMss; }
  const ip6_addr_t& localAddress() const { return config_.localAddress; }
  TunnelObserver& observer() { return observer_; }
  Stack& stack() { return stack_; }
  // A stream is over (erased at the end of the turn); `notify`: JS knew it
  // as connected and hears that it closed.
  void streamEnded(uint32_t id, const std::string& reason, uint64_t bytesIn, uint64_t bytesOut, bool notify);
  void log(const char* level, const std::string& text) { observer_.onTunnelLog(*this, level, text); }
  // Accepts one tunnel TCP connection on a listening port (device role);
  // ERR_ABRT when it was refused (and aborted).
  err_t accepted(struct tcp_pcb* pcb, uint16_t port, const PortTarget& target);

 private:
  static err_t netifInit(struct netif* n);
  static err_t netifOutput(struct netif* n, struct pbuf* p, const ip6_addr_t* dest);
  err_t output(struct pbuf* p);
  // One packet into the tunnel, one TLS record (output() and readTun()).
  void sendPacket(const uint8_t* data, size_t len);
  // A copy for the capture tap, if one runs; the direction as the host sees it.
  void capture(core::CaptureDirection hostToDevice, const uint8_t* packet, size_t len);
  // tunnel_tun.cc
  class TunPort : public core::Pollable {
   public:
    explicit TunPort(Tunnel& tunnel) : tunnel_(tunnel) {}
    void onPoll(uint32_t) override { tunnel_.readTun(); }

   private:
    Tunnel& tunnel_;
  };
  void readTun();
  bool kernelOwns(const uint8_t* packet, size_t len) const;
  void writeTun(const uint8_t* packet, size_t len);
  bool kernelMaySend(const uint8_t* packet, size_t len) const;
  void closeTun();
  void processInput();
  void takeInbound();
  void takeFrame();
  void inputPacket(const uint8_t* packet, size_t len);
  // Ciphertext the TLS layer made -> mux packets, or the queue.
  void flushTls();
  void sendQueued();
  bool startListening(std::string& error);
  static err_t onAccept(void* arg, struct tcp_pcb* pcb, err_t err);
  void stopNetif();
  void fail(const char* code, const std::string& reason);
  bool dropInbound(size_t len);
  bool dropOutbound();

  core::EventLoop& loop_;
  Stack& stack_;
  TunnelObserver& observer_;
  Role role_;
  uint32_t id_;
  uint32_t handle_;
  std::unique_ptr<TlsChannel> tls_;
  std::string request_;  // host: the clientHandshakeRequest body
  mux::Connection* conn_ = nullptr;
  State state_ = State::Tls;
  TunnelConfig config_;
  TunnelCounters counters_;

  CdTunnelFrameReader frame_;
  Ipv6Framer framer_;
  std::deque<std::vector<uint8_t>> queue_;  // ciphertext the mux window holds back
  size_t queueOffset_ = 0;                   // sent from queue_.front()
  size_t queuedBytes_ = 0;
  std::vector<uint8_t> scratch_;  // one outgoing packet, gathered from a pbuf chain

  struct netif netif_ {};
  bool netifUp_ = false;
  struct Listener {
    Tunnel* tunnel;
    uint16_t port;
    PortTarget target;
    struct tcp_pcb* pcb;
  };
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::map<uint32_t, std::shared_ptr<Stream>> streams_;
  std::vector<std::shared_ptr<PreambleListener>> preambleListeners_;
  core::EventLoop::TimerId handshakeTimer_ = 0;
  std::mt19937 random_;
  bool closing_ = false;
  bool needAccept_ = false;      // device: answer the mux SYN at the end of the turn
  std::string deferredFailure_;  // a failure found inside an lwIP callback
  uint32_t packetsThisTurn_ = 0;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};

  // TUN mode. Lifetime: the port is registered with the loop while tunFd_
  // is open, and both go in closeTun(), before the tunnel does.
  int tunFd_ = -1;
  std::string tunName_;
  std::unique_ptr<TunPort> tunPort_;
  bool tunBacklog_ = false;  // stopped reading before EAGAIN: read on in runDeferred()
  bool tunWriteFailed_ = false;
  std::vector<uint8_t> tunBuffer_;
};

}  // namespace tsmuxd::tunnel
