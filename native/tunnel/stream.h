#pragma once
// One TCP connection inside a tunnel (an lwIP pcb) and the local socket it
// is bridged to: in the daemon a client's socket (tunnelConnect, the
// preamble listener), in the sim the service's. Bytes go between the pcb
// and the socket on the event thread only.
//
// Backpressure, as for a mux connection: we read the socket only while the
// pcb's send buffer has room, and we tcp_recved() only what the socket took,
// so a reader that stalls closes the peer's window instead of growing our
// memory (at most TCP_WND of received data per stream).
//
// Teardown: the peer's FIN becomes shutdown(SHUT_WR) once its data is
// written; the socket's EOF becomes our FIN. A reset on either side resets
// the other; after the peer's reset or the tunnel's end, what was already
// received is still written to the socket (kStreamDrainTimeoutMs) before it
// is closed.
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "lwip/ip6_addr.h"
#include "lwip/pbuf.h"
}

#include "core/event_loop.h"

struct tcp_pcb;

namespace tsmuxd::tunnel {

class Tunnel;

class Stream : public core::Pollable, public core::Deferred {
 public:
  // Host: `pcb` null, connect() follows. Device: an accepted pcb.
  // `quiet`: JS never hears of it (the preamble listener's streams).
  Stream(Tunnel& tunnel, uint32_t id, struct tcp_pcb* pcb, bool quiet = false);
  ~Stream() override;

  uint32_t id() const { return id_; }
  bool connected() const { return established_; }

  // Host: SYN to [address]:port; the observer hears connected or failed.
  bool connect(const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs, std::string& error);
  // The local socket (non-blocking, ours from now on). `connecting`: an
  // outgoing connect in progress (device role). `early`: bytes to send first.
  void attach(int fd, bool connecting, std::vector<uint8_t> early);
  // The tunnel is going: reset the peer side, drain what we hold to the
  // socket, then close it.
  void tunnelGone(const std::string& reason);
  // Reset both sides now (JS closed it, or the tunnel was told to close).
  void abort(const std::string& reason);

  void onPoll(uint32_t events) override;
  void runDeferred() override;

 private:
  static err_t onConnected(void* arg, struct tcp_pcb* pcb, err_t err);
  static err_t onRecv(void* arg, struct tcp_pcb* pcb, struct pbuf* p, err_t err);
  static err_t onSent(void* arg, struct tcp_pcb* pcb, u16_t len);
  static void onError(void* arg, err_t err);

  void bindPcb(struct tcp_pcb* pcb);
  void releasePcb(bool reset);
  void pumpToSocket();
  void pumpFromSocket();
  void peerFailed(const std::string& reason);
  void finishIfDone();
  void end(const std::string& reason);

  Tunnel& tunnel_;
  // A draining stream outlives its tunnel's close; this keeps the tunnel
  // (not its netif, which is gone) until the stream ends.
  std::shared_ptr<Tunnel> keep_;
  uint32_t id_;
  bool quiet_;
  struct tcp_pcb* pcb_ = nullptr;
  int fd_ = -1;
  bool established_ = false;  // the TCP handshake finished
  bool reported_ = false;     // the observer heard connected or failed
  bool fdConnecting_ = false;
  bool readable_ = false;
  bool writable_ = false;
  bool localEof_ = false;  // the socket's EOF is sent as our FIN
  bool peerEof_ = false;   // the peer's FIN arrived
  bool shutWrite_ = false;
  bool ended_ = false;
  std::string endReason_;
  std::deque<struct pbuf*> inbound_;  // the peer's bytes the socket has not taken
  size_t inboundOffset_ = 0;          // into inbound_.front()
  size_t inboundBytes_ = 0;
  std::vector<uint8_t> early_;
  size_t earlySent_ = 0;
  uint64_t bytesIn_ = 0;   // from the peer to the socket
  uint64_t bytesOut_ = 0;  // from the socket to the peer
  core::EventLoop::TimerId timer_ = 0;  // connect or drain limit
};

}  // namespace tsmuxd::tunnel
