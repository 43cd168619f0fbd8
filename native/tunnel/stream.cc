#include "tunnel/stream.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

extern "C" {
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
}

#include "tunnel/limits.h"
#include "tunnel/tunnel.h"

namespace tsmuxd::tunnel {

namespace {

// lwIP's own names are terse ("Connection reset."); ours say who did it.
std::string lwipErrorText(err_t err) {
  switch (err) {
    case ERR_RST: return "reset by the peer";
    case ERR_ABRT: return "aborted";
    case ERR_CLSD: return "closed";
    case ERR_TIMEOUT: return "timed out";
    case ERR_MEM: return "out of memory";
    default: return "lwIP error " + std::to_string(int(err));
  }
}

// tcp_write() and tcp_recved() take a u16 length.
constexpr size_t kMaxLwipLength = 0xFFFF;

}  // namespace

Stream::Stream(Tunnel& tunnel, uint32_t id, struct tcp_pcb* pcb, bool quiet)
    : tunnel_(tunnel), keep_(tunnel.shared_from_this()), id_(id), quiet_(quiet) {
  if (pcb) {
    bindPcb(pcb);
    established_ = true;
    reported_ = true;  // an accepted stream is never "connecting" to JS
    if (tunnel_.sendMss() && pcb->mss > tunnel_.sendMss()) pcb->mss = tunnel_.sendMss();
  }
}

Stream::~Stream() {
  if (timer_) tunnel_.loop().cancelTimer(timer_);
  releasePcb(true);
  if (fd_ >= 0) {
    tunnel_.loop().remove(fd_);
    ::close(fd_);
  }
  for (struct pbuf* p : inbound_) pbuf_free(p);
}

void Stream::bindPcb(struct tcp_pcb* pcb) {
  pcb_ = pcb;
  // lwIP starts every connection with a 3 s retransmission timeout (and
  // the deviation to match), RFC 6298's guess for a path it knows nothing
  // of. A tunnel's round trip is a millisecond or two: a segment lost
  // before the estimate settles would stall a short transfer for seconds.
  if (pcb->sa == 0) {
    pcb->rto = s16_t(kInitialRtoMs / TCP_SLOW_INTERVAL);
    pcb->sv = s16_t(kInitialRtoMs / TCP_SLOW_INTERVAL);
  }
  tcp_arg(pcb, this);
  tcp_recv(pcb, onRecv);
  tcp_sent(pcb, onSent);
  tcp_err(pcb, onError);
}

// Forgets the pcb: lwIP must not call us about it again. tcp_abort() would
// otherwise call onError() from inside this object's own teardown.
void Stream::releasePcb(bool reset) {
  if (!pcb_) return;
  struct tcp_pcb* pcb = pcb_;
  pcb_ = nullptr;
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
  if (reset || tcp_close(pcb) != ERR_OK) tcp_abort(pcb);
}

bool Stream::connect(const ip6_addr_t& address, uint16_t port, uint64_t timeoutMs, std::string& error) {
  struct tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_V6);
  if (!pcb) {
    error = "lwIP has no memory for a new connection";
    return false;
  }
  tcp_bind_netif(pcb, tunnel_.netif());
  ip_addr_t local;
  ip_addr_copy_from_ip6(local, tunnel_.localAddress());
  err_t err = tcp_bind(pcb, &local, 0);
  if (err != ERR_OK) {
    tcp_abort(pcb);
    error = "cannot bind a tunnel port: " + lwipErrorText(err);
    return false;
  }
  bindPcb(pcb);
  ip_addr_t dest;
  ip_addr_copy_from_ip6(dest, address);
  err = tcp_connect(pcb, &dest, port, onConnected);
  if (err != ERR_OK) {
    releasePcb(true);
    error = "tcp_connect failed: " + lwipErrorText(err);
    return false;
  }
  timer_ = tunnel_.loop().addTimer(timeoutMs, [this] {
    timer_ = 0;
    if (!established_) end("connect timed out");
  });
  return true;
}

void Stream::attach(int fd, bool connecting, std::vector<uint8_t> early) {
  fd_ = fd;
  fdConnecting_ = connecting;
  early_ = std::move(early);
  readable_ = !connecting;
  writable_ = !connecting;
  tunnel_.loop().add(fd, this, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
  tunnel_.loop().defer(this);
}

err_t Stream::onConnected(void* arg, struct tcp_pcb* pcb, err_t) {
  Stream* self = static_cast<Stream*>(arg);
  if (!self) return ERR_OK;
  self->established_ = true;
  if (self->timer_) {
    self->tunnel_.loop().cancelTimer(self->timer_);
    self->timer_ = 0;
  }
  // lwIP took the peer's MSS (bounded by our MTU); we send smaller segments
  // than that when the tunnel says so (kDefaultSendMss).
  if (self->tunnel_.sendMss() && pcb->mss > self->tunnel_.sendMss()) pcb->mss = self->tunnel_.sendMss();
  self->reported_ = true;
  if (!self->quiet_) self->tunnel_.observer().onStreamConnected(self->tunnel_, self->id_);
  if (self->fd_ >= 0) self->tunnel_.loop().defer(self);  // a socket waited for the handshake
  return ERR_OK;
}

err_t Stream::onRecv(void* arg, struct tcp_pcb* pcb, struct pbuf* p, err_t) {
  Stream* self = static_cast<Stream*>(arg);
  if (!self) {
    if (p) {
      tcp_recved(pcb, p->tot_len);
      pbuf_free(p);
    }
    return ERR_OK;
  }
  if (!p) {
    self->peerEof_ = true;
  } else if (self->ended_) {
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
  } else {
    self->inbound_.push_back(p);
    self->inboundBytes_ += p->tot_len;
  }
  self->tunnel_.loop().defer(self);
  return ERR_OK;
}

err_t Stream::onSent(void* arg, struct tcp_pcb*, u16_t) {
  Stream* self = static_cast<Stream*>(arg);
  if (self && self->readable_) self->tunnel_.loop().defer(self);
  return ERR_OK;
}

// The pcb is already freed by lwIP when this runs.
void Stream::onError(void* arg, err_t err) {
  Stream* self = static_cast<Stream*>(arg);
  if (!self) return;
  self->pcb_ = nullptr;
  self->peerFailed(lwipErrorText(err));
}

void Stream::peerFailed(const std::string& reason) {
  if (ended_) return;
  if (!established_) {
    end(reason == "reset by the peer" ? "connection refused (the peer answered with a reset)" : reason);
    return;
  }
  // Deliver what was received before the failure, then close.
  endReason_ = reason;
  if (!timer_) {
    timer_ = tunnel_.loop().addTimer(kStreamDrainTimeoutMs, [this] {
      timer_ = 0;
      end(endReason_ + "; " + std::to_string(inboundBytes_) + " received bytes were never read");
    });
  }
  tunnel_.loop().defer(this);
}

void Stream::tunnelGone(const std::string& reason) {
  releasePcb(true);
  peerFailed(reason);
}

void Stream::abort(const std::string& reason) {
  releasePcb(true);
  end(reason);
}

void Stream::onPoll(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) readable_ = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) writable_ = true;
  tunnel_.loop().defer(this);
}

void Stream::runDeferred() {
  if (ended_ || fd_ < 0) return;
  if (fdConnecting_) {
    if (!writable_) return;
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    if (error != 0) {
      abort(std::string("the service's socket did not connect: ") + std::strerror(error));
      return;
    }
    fdConnecting_ = false;
    readable_ = true;
  }
  pumpToSocket();
  if (ended_) return;
  pumpFromSocket();
  if (ended_) return;
  finishIfDone();
}

void Stream::pumpToSocket() {
  while (writable_ && !inbound_.empty()) {
    struct iovec iov[64];
    int count = 0;
    size_t skip = inboundOffset_;
    for (struct pbuf* chain : inbound_) {
      for (struct pbuf* q = chain; q && count < 64; q = q->next) {
        if (skip >= q->len) {
          skip -= q->len;
          continue;
        }
        iov[count].iov_base = static_cast<uint8_t*>(q->payload) + skip;
        iov[count].iov_len = q->len - skip;
        skip = 0;
        ++count;
      }
      if (count == 64) break;
    }
    ssize_t n = ::writev(fd_, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        writable_ = false;
        return;
      }
      abort(std::string("writing to the local socket failed: ") + std::strerror(errno));
      return;
    }
    size_t taken = size_t(n);
    bytesIn_ += taken;
    inboundBytes_ -= taken;
    // Free whole chains; remember how far into the first one we are.
    size_t left = taken;
    while (left > 0) {
      struct pbuf* head = inbound_.front();
      size_t rest = head->tot_len - inboundOffset_;
      if (left < rest) {
        inboundOffset_ += left;
        break;
      }
      left -= rest;
      inboundOffset_ = 0;
      inbound_.pop_front();
      pbuf_free(head);
    }
    // Open the window only for what the socket took.
    for (size_t done = 0; pcb_ && done < taken;) {
      size_t chunk = std::min(taken - done, kMaxLwipLength);
      tcp_recved(pcb_, u16_t(chunk));
      done += chunk;
    }
  }
  if (inbound_.empty() && peerEof_ && !shutWrite_ && fd_ >= 0) {
    ::shutdown(fd_, SHUT_WR);
    shutWrite_ = true;
  }
}

void Stream::pumpFromSocket() {
  if (!pcb_ || !established_ || localEof_) return;
  static thread_local uint8_t buffer[kStreamReadChunk];
  bool wrote = false;
  while (pcb_) {
    size_t room = tcp_sndbuf(pcb_);
    // Leave queue entries for lwIP's own segments (FIN, retransmissions).
    if (tcp_sndqueuelen(pcb_) + 64 >= TCP_SND_QUEUELEN) room = 0;
    if (room == 0) break;
    size_t want = std::min({room, kStreamReadChunk, kMaxLwipLength});
    size_t n = 0;
    if (earlySent_ < early_.size()) {
      n = std::min(want, early_.size() - earlySent_);
      std::memcpy(buffer, early_.data() + earlySent_, n);
      earlySent_ += n;
    } else {
      if (!readable_) break;
      ssize_t got = ::read(fd_, buffer, want);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          readable_ = false;
          break;
        }
        abort(std::string("reading the local socket failed: ") + std::strerror(errno));
        return;
      }
      if (got == 0) {
        localEof_ = true;
        tcp_shutdown(pcb_, 0, 1);
        wrote = true;
        break;
      }
      n = size_t(got);
    }
    err_t err = tcp_write(pcb_, buffer, u16_t(n), TCP_WRITE_FLAG_COPY);
    if (err != ERR_OK) {
      // tcp_sndbuf() said there was room; lwIP could not allocate.
      abort("tcp_write failed: " + lwipErrorText(err));
      return;
    }
    bytesOut_ += n;
    wrote = true;
  }
  if (wrote && pcb_) {
    tcp_output(pcb_);
    tunnel_.stack().poke();
  }
}

void Stream::finishIfDone() {
  if (!pcb_) {
    // The peer failed or the tunnel went: close once what it sent is written.
    if (inbound_.empty() && established_) end(endReason_.empty() ? "closed" : endReason_);
    return;
  }
  if (peerEof_ && localEof_ && shutWrite_) {
    releasePcb(false);
    end("closed");
  }
}

void Stream::end(const std::string& reason) {
  if (ended_) return;
  ended_ = true;
  if (timer_) {
    tunnel_.loop().cancelTimer(timer_);
    timer_ = 0;
  }
  releasePcb(true);
  if (fd_ >= 0) {
    tunnel_.loop().remove(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  for (struct pbuf* p : inbound_) pbuf_free(p);
  inbound_.clear();
  inboundBytes_ = 0;
  bool wasConnected = reported_;
  if (!reported_) {
    reported_ = true;
    if (!quiet_) tunnel_.observer().onStreamConnectFailed(tunnel_, id_, "ECONNREFUSED", reason);
  }
  tunnel_.streamEnded(id_, reason, bytesIn_, bytesOut_, wasConnected && !quiet_);
}

}  // namespace tsmuxd::tunnel
