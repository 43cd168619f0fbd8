// Fuzzes lwIP itself, built with our lwipopts.h (native/tunnel/lwip_port),
// with the packets a hostile phone can send through a tunnel: whatever the
// IPv6 framer cuts out of the stream and the tunnel's extension-header guard
// lets through (native/tunnel/ipv6_guard.h, linked as is) goes to ip6_input
// on the tunnel's netif, as in Tunnel::inputPacket. lwIP must not crash, trip
// its own assertions or
// draw an ASan/UBSan report, and every packet it sends back must be a
// well-formed IPv6 packet (version 6, a payload length that matches, TCP or
// ICMPv6 from our address with a correct checksum) no longer than the MTU.
//
// lwip_init runs once per process. Each input then sets up one netif as
// Tunnel::configure does (fd00::2 preferred, the MTU from the input, an
// output_ip6 that collects and checks), a listening pcb on kListenPort whose
// accept callback takes every connection (as Tunnel::startListening), and a
// pcb that tcp_connect()s to fd00::1 (as Stream::connect, but from the fixed
// port kConnectPort so that inputs can answer it); at the end every pcb is
// aborted and the netif removed, so inputs do not depend on each other
// beyond lwIP's ISN and port counters.
//
// The clock is the harness's: sys_now() returns a variable the input
// advances. native/tunnel/lwip_platform.cc is linked, but its sys_now (which
// reads CLOCK_MONOTONIC), random source and assert hook are replaced by the
// harness's through the linker's --wrap (scripts/fuzz.sh); whatever else lwIP
// takes from it (the checksum) is the addon's own.
//
// Input: [flags][u16 mtu][u16 bytes to send] then packets, each
//   [u16 prefix][bytes]: the low 12 bits of the prefix are the packet's length
//   (the input's end cuts the last one short; under 40 bytes, zeros follow).
//   The version nibble is always 6 and the payload length always the rest of
//   the packet, as the IPv6 framer guarantees (Tunnel::inputPacket).
//   bit 12: fix the TCP or ICMPv6 checksum (after bit 13's changes);
//   bit 13: source fd00::1, destination fd00::2, and for TCP the sequence and
//           acknowledgement numbers that the pcb with these ports expects;
//   bits 14-15, before the packet: 1: one round of Stack's timer (the clock
//           moves by up to TCP_TMR_INTERVAL while TCP is busy, 250 ms
//           otherwise; sys_check_timeouts()); 2: 100 rounds; 3: tcp_tmr() alone.
// flags bits 0-1: MTU 16000 (what we ask for), 1280, 1500, or
//   1280 + mtu % 64256; bit 2: every pcb's MSS is clamped to the send MSS,
//   min(1340, MTU - 60), as Stream does; bit 3: accepted connections echo
//   what they receive; bit 4: the connecting pcb sends `bytes to send` once
//   connected; bit 5: no connecting pcb; bit 6: the netif checks checksums as
//   the device role's does (all), not as the host role's (TCP's unchecked:
//   TLS authenticated the packet).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "lwip/init.h"
#include "lwip/ip6.h"
#include "lwip/ip6_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
}

#include "fuzz_check.h"
#include "tunnel/ipv6_guard.h"
#include "tunnel/limits.h"

namespace {

constexpr uint16_t kListenPort = 58783;   // RSD's port on a phone
constexpr uint16_t kConnectPort = 50000;  // our end of the connecting pcb
constexpr uint16_t kRemotePort = 62078;   // where it connects to
constexpr size_t kMaxSend = 256u << 10;   // per input, for the connecting pcb

// The fake clock starts just before u32 wraps, as a real sys_now() does
// every 49.7 days.
u32_t fakeNow = 0xFFFFF000u;
uint32_t randState = 1;

struct Run {
  struct netif netif;
  uint16_t mtu = 0;
  uint16_t sendMss = 0;
  bool clampMss = false;
  bool echo = false;
  size_t toSend = 0;
  size_t sent = 0;
  size_t inputLen = 0;  // the packet ip6_input is handling, 0 between packets
  uint64_t guardDrops = 0;
  uint64_t outputs = 0;
};
Run* run = nullptr;

ip6_addr_t addr(uint32_t last) {
  ip6_addr_t a;
  IP6_ADDR(&a, PP_HTONL(0xfd000000ul), 0, 0, PP_HTONL(last));
  return a;
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) acc += uint32_t(p[n - 1] << 8);
  return acc;
}

// The ones' complement sum of the pseudo-header and the upper-layer bytes
// (from `at` to the end).
uint16_t upperSum(const uint8_t* packet, size_t len, uint8_t nextHeader, size_t at = 40) {
  uint32_t acc = sum16(packet + 8, 32, 0);
  uint32_t upper = uint32_t(len - at);
  acc += upper >> 16;
  acc += upper & 0xffff;
  acc += nextHeader;
  acc = sum16(packet + at, len - at, acc);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return uint16_t(acc);
}

size_t checksumOffset(uint8_t nextHeader, size_t len, size_t upper = 40) {
  if (nextHeader == IP6_NEXTH_TCP && len >= upper + 20) return upper + 16;
  if (nextHeader == IP6_NEXTH_ICMP6 && len >= upper + 4) return upper + 2;
  return 0;
}

// Where the upper-layer header starts, past any hop-by-hop, destination
// options, routing and fragment headers (for the input fix-ups only).
size_t upperLayer(const uint8_t* b, size_t len, uint8_t& nh) {
  size_t at = 40;
  nh = b[6];
  while (nh == IP6_NEXTH_HOPBYHOP || nh == IP6_NEXTH_DESTOPTS || nh == IP6_NEXTH_ROUTING ||
         nh == IP6_NEXTH_FRAGMENT) {
    if (len - at < 8) return at;
    size_t hlen = nh == IP6_NEXTH_FRAGMENT ? 8 : 8 * (1 + size_t(b[at + 1]));
    if (hlen > len - at) return at;
    nh = b[at];
    at += hlen;
  }
  return at;
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, uint16_t(v >> 16));
  put16(p + 2, uint16_t(v));
}
uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// Every packet lwIP sends to the phone.
err_t output(struct netif* n, struct pbuf* p, const ip6_addr_t*) {
  FUZZ_CHECK(run && n == &run->netif, "output on a netif that is not ours");
  size_t len = p->tot_len;
  FUZZ_CHECK(len >= 40, "lwIP sent a %zu-byte packet", len);
  std::vector<uint8_t> b(len);
  FUZZ_CHECK(pbuf_copy_partial(p, b.data(), u16_t(len), 0) == len, "pbuf chain shorter than tot_len");
  // Known (docs/fuzzing.md, "What it found"): lwIP answers an echo request
  // with a reply of the same size, and with LWIP_IPV6_FRAG off nothing on
  // its output path checks the MTU. Such a reply may exceed the MTU only by
  // as much as the phone's own request did.
  bool echoOfOversize = len > 40 && b[6] == IP6_NEXTH_ICMP6 && b[40] == 129 && len <= run->inputLen;
  FUZZ_CHECK(len <= run->mtu || echoOfOversize, "lwIP sent a %zu-byte packet over a %u-byte MTU", len,
             run->mtu);
  FUZZ_CHECK((b[0] >> 4) == 6, "lwIP sent an IP version %u packet", b[0] >> 4);
  FUZZ_CHECK(get16(&b[4]) == len - 40, "payload length %u in a %zu-byte packet", get16(&b[4]), len);
  uint8_t nh = b[6];
  FUZZ_CHECK(nh == IP6_NEXTH_TCP || nh == IP6_NEXTH_ICMP6, "lwIP sent next header %u", nh);
  ip6_addr_t ours = addr(2);
  FUZZ_CHECK(std::memcmp(&b[8], ours.addr, 16) == 0, "a packet not from fd00::2");
  FUZZ_CHECK(checksumOffset(nh, len) != 0, "a %zu-byte packet too short for its next header %u", len, nh);
  FUZZ_CHECK(upperSum(b.data(), len, nh) == 0xffff, "a bad %s checksum",
             nh == IP6_NEXTH_TCP ? "TCP" : "ICMPv6");
  if (nh == IP6_NEXTH_TCP) {
    size_t offset = size_t(b[40 + 12] >> 4) * 4;
    FUZZ_CHECK(offset >= 20 && 40 + offset <= len, "TCP data offset %zu in a %zu-byte packet", offset, len);
  }
  ++run->outputs;
  return ERR_OK;
}

err_t netifInit(struct netif* n) {
  n->name[0] = 't';
  n->name[1] = 'n';
  n->output_ip6 = output;
  n->flags = 0;
  return ERR_OK;
}

void clamp(struct tcp_pcb* pcb) {
  if (run->clampMss && pcb->mss > run->sendMss) pcb->mss = run->sendMss;
}

void onError(void*, err_t) {}

err_t onRecv(void*, struct tcp_pcb* pcb, struct pbuf* p, err_t) {
  if (!p) {
    // The peer's FIN: our end closes too (a stream does once its socket drained).
    if (tcp_close(pcb) != ERR_OK) {
      tcp_abort(pcb);
      return ERR_ABRT;
    }
    return ERR_OK;
  }
  if (run->echo) {
    size_t n = std::min<size_t>(p->tot_len, tcp_sndbuf(pcb));
    if (n > 0) {
      std::vector<uint8_t> copy(n);
      pbuf_copy_partial(p, copy.data(), u16_t(n), 0);
      tcp_write(pcb, copy.data(), u16_t(n), TCP_WRITE_FLAG_COPY);
    }
  }
  tcp_recved(pcb, p->tot_len);
  pbuf_free(p);
  return ERR_OK;
}

void sendMore(struct tcp_pcb* pcb) {
  static const std::vector<uint8_t> pattern = [] {
    std::vector<uint8_t> v(0xffff);
    for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(i * 7);
    return v;
  }();
  while (run->sent < run->toSend) {
    size_t n = std::min<size_t>({run->toSend - run->sent, tcp_sndbuf(pcb), 0xffff});
    if (n == 0 || tcp_write(pcb, pattern.data(), u16_t(n), TCP_WRITE_FLAG_COPY) != ERR_OK) break;
    run->sent += n;
  }
}

// Only the connecting pcb (its arg is the run) sends on its own.
err_t onSent(void* arg, struct tcp_pcb* pcb, u16_t) {
  if (arg) sendMore(pcb);
  return ERR_OK;
}

// Stream::bindPcb: lwIP's first RTO of 3 s becomes kInitialRtoMs, then the
// callbacks.
void bindPcb(struct tcp_pcb* pcb, void* arg) {
  if (pcb->sa == 0) {
    pcb->rto = s16_t(tsmuxd::tunnel::kInitialRtoMs / TCP_SLOW_INTERVAL);
    pcb->sv = s16_t(tsmuxd::tunnel::kInitialRtoMs / TCP_SLOW_INTERVAL);
  }
  tcp_arg(pcb, arg);
  tcp_recv(pcb, onRecv);
  tcp_sent(pcb, onSent);
  tcp_err(pcb, onError);
}

err_t onConnected(void*, struct tcp_pcb* pcb, err_t) {
  clamp(pcb);
  sendMore(pcb);
  return ERR_OK;
}

err_t onAccept(void*, struct tcp_pcb* pcb, err_t err) {
  if (err != ERR_OK || !pcb) return ERR_VAL;
  bindPcb(pcb, nullptr);
  clamp(pcb);
  return ERR_OK;
}

// A known lwIP 2.1.3 bug (docs/fuzzing.md, "What it found"): tcp_parseopt
// reads a TCP option's length byte before it checks that the options hold
// it. When the option kind is the last byte of a segment without data, that
// is a one-byte heap over-read past the pbuf. This walks the options as
// tcp_parseopt does and says whether it would; such packets are not fed, so
// the fuzzer looks past the known bug. TSMUXD_FUZZ_LWIP_KNOWN=1 feeds them
// anyway (to check a fix). (lwIP's extension-header over-reads, found here
// first, are now dropped by the tunnel's own guard, which the harness runs.)
bool tcpOptionOverread(const uint8_t* b, size_t len) {
  uint8_t nh;
  size_t at = upperLayer(b, len, nh);
  if (nh != IP6_NEXTH_TCP || len < at + 20) return false;
  size_t end = at + size_t(b[at + 12] >> 4) * 4;
  if (end < at + 20 || end != len) return false;  // dropped, or data follows the options
  for (size_t i = at + 20; i < end;) {
    uint8_t kind = b[i];
    if (kind == 0) return false;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= end) return true;
    size_t optLen = b[i + 1];
    size_t want = kind == 2 ? 4 : kind == 3 ? 3 : kind == 4 ? 2 : 0;
    if (want ? (optLen != want || i + want > end) : optLen < 2) return false;
    i += optLen;
  }
  return false;
}

// Bit 13: what the pcb with these ports expects next.
void fixTcp(uint8_t* b, size_t len) {
  uint8_t nh;
  size_t at = upperLayer(b, len, nh);
  if (nh != IP6_NEXTH_TCP || len < at + 20) return;
  uint16_t sport = get16(b + at), dport = get16(b + at + 2);
  for (struct tcp_pcb* pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
    if (pcb->local_port == dport && pcb->remote_port == sport) {
      put32(b + at + 4, pcb->rcv_nxt);
      put32(b + at + 8, pcb->snd_nxt);
      return;
    }
  }
}

void feed(uint8_t* b, size_t len, uint16_t prefix) {
  if (prefix & 0x2000) {
    ip6_addr_t peer = addr(1), ours = addr(2);
    std::memcpy(b + 8, peer.addr, 16);
    std::memcpy(b + 24, ours.addr, 16);
    fixTcp(b, len);
  }
  // What the framer hands on is always this (ipv6_framer.h): lwIP is never
  // given anything else, and it reads the version and payload length before
  // it checks that the packet holds a header.
  b[0] = uint8_t(0x60 | (b[0] & 0x0f));
  put16(b + 4, uint16_t(len - 40));
  if (prefix & 0x1000) {
    uint8_t nh;
    size_t upper = upperLayer(b, len, nh);
    if (size_t at = checksumOffset(nh, len, upper)) {
      put16(b + at, 0);
      put16(b + at, uint16_t(~upperSum(b, len, nh, upper)));
    }
  }
  static const bool feedKnown = [] {
    const char* v = std::getenv("TSMUXD_FUZZ_LWIP_KNOWN");
    return v && *v == '1';
  }();
  // Tunnel::inputPacket: the guard, then one PBUF_RAM pbuf per packet, which
  // ip6_input takes.
  if (!tsmuxd::tunnel::headersFit(b, len)) {
    ++run->guardDrops;
    return;
  }
  if (!feedKnown && tcpOptionOverread(b, len)) return;
  struct pbuf* p = pbuf_alloc(PBUF_RAW, u16_t(len), PBUF_RAM);
  FUZZ_CHECK(p, "no pbuf for %zu bytes", len);
  std::memcpy(p->payload, b, len);
  run->inputLen = len;
  ip6_input(p, &run->netif);
  run->inputLen = 0;
}

// One round of Stack's timer (native/tunnel/stack.cc): the clock moves to
// lwIP's next timeout, but at most one TCP tick while a stream has data in
// flight or owes an ACK, and 250 ms otherwise; then sys_check_timeouts().
void stackRound() {
  bool busy = false;
  for (struct tcp_pcb* pcb = tcp_active_pcbs; pcb && !busy; pcb = pcb->next) {
    busy = pcb->unacked || pcb->unsent || (pcb->flags & TF_ACK_DELAY) || pcb->refused_data;
  }
  u32_t cap = busy ? u32_t(TCP_TMR_INTERVAL) : 250u;
  u32_t delay = std::min(sys_timeouts_sleeptime(), cap);
  fakeNow += delay == 0 ? 1 : delay;
  sys_check_timeouts();
}

void tick(unsigned action) {
  switch (action) {
    case 1:
      stackRound();
      break;
    case 2:
      for (int i = 0; i < 100; ++i) stackRound();
      break;
    case 3: tcp_tmr(); break;
    default: break;
  }
}

// TSMUXD_FUZZ_VERBOSE=1: one line per input, to check what a seed reaches.
void describe() {
  static const bool verbose = [] {
    const char* v = std::getenv("TSMUXD_FUZZ_VERBOSE");
    return v && *v == '1';
  }();
  if (!verbose) return;
  std::fprintf(stderr, "lwip_input: MTU %u, %llu packets out, %llu dropped by the guard, %zu of %zu bytes written, "
               "tcp_ticks %u; pcbs:", run->mtu, static_cast<unsigned long long>(run->outputs),
               static_cast<unsigned long long>(run->guardDrops), run->sent, run->toSend, tcp_ticks);
  for (struct tcp_pcb* pcb = tcp_active_pcbs; pcb; pcb = pcb->next) {
    std::fprintf(stderr, " %u->%u %s mss %u nrtx %u rto %d rtime %d", pcb->local_port, pcb->remote_port,
                 tcp_debug_state_str(pcb->state), pcb->mss, pcb->nrtx, pcb->rto, pcb->rtime);
  }
  for (struct tcp_pcb* pcb = tcp_tw_pcbs; pcb; pcb = pcb->next) std::fprintf(stderr, " %u TIME_WAIT", pcb->local_port);
  std::fprintf(stderr, "\n");
}

void teardown() {
  describe();
  while (tcp_active_pcbs) tcp_abort(tcp_active_pcbs);
  while (tcp_tw_pcbs) tcp_abort(tcp_tw_pcbs);
  while (tcp_bound_pcbs) tcp_abort(tcp_bound_pcbs);
  while (tcp_listen_pcbs.listen_pcbs) tcp_close(reinterpret_cast<struct tcp_pcb*>(tcp_listen_pcbs.listen_pcbs));
  netif_remove(&run->netif);
}

}  // namespace

// native/tunnel/lwip_platform.cc is linked (lwIP may need more of it than
// these, e.g. its checksum), but fuzz.sh links with --wrap for these three:
// lwIP's calls come here instead.
extern "C" u32_t __wrap_sys_now(void) { return fakeNow; }

extern "C" uint32_t __wrap_tsmuxd_lwip_rand(void) {
  randState ^= randState << 13;
  randState ^= randState >> 17;
  randState ^= randState << 5;
  return randState;
}

extern "C" void __wrap_tsmuxd_lwip_assert_failed(const char* message, const char* file, int line) {
  std::fprintf(stderr, "lwIP assertion failed at %s:%d: %s\n", file, line, message);
  std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool initialised = [] {
    lwip_init();
    return true;
  }();
  (void)initialised;
  randState = 0x2545F491u;

  tsmuxd::fuzz::InputReader in(data, size);
  uint8_t flags = in.u8();
  uint16_t mtuRaw = in.u16();
  uint16_t toSend = in.u16();

  Run r;
  run = &r;
  static const uint16_t kMtus[] = {16000, 1280, 1500};
  r.mtu = (flags & 3) < 3 ? kMtus[flags & 3] : uint16_t(1280 + mtuRaw % 64256);
  r.sendMss = uint16_t(std::min<unsigned>(1340, r.mtu - 60u));
  r.clampMss = flags & 4;
  r.echo = flags & 8;
  r.toSend = (flags & 16) ? std::min<size_t>(size_t(toSend) * 4, kMaxSend) : 0;

  // Tunnel::configure.
  std::memset(&r.netif, 0, sizeof r.netif);
  FUZZ_CHECK(netif_add(&r.netif, &r, netifInit, ip6_input), "netif_add failed");
  r.netif.mtu = r.mtu;
#if LWIP_ND6_ALLOW_RA_UPDATES
  r.netif.mtu6 = r.netif.mtu;
#endif
  ip6_addr_t ours = addr(2), peer = addr(1);
  s8_t index = -1;
  FUZZ_CHECK(netif_add_ip6_address(&r.netif, &ours, &index) == ERR_OK && index >= 0, "no address");
  netif_ip6_addr_set_state(&r.netif, index, IP6_ADDR_PREFERRED);
#if LWIP_CHECKSUM_CTRL_PER_NETIF
  // As the host role (the daemon, facing the phone) does; bit 6: as the
  // device role (the sim), which leaves every check on.
  if (!(flags & 64)) NETIF_SET_CHECKSUM_CTRL(&r.netif, NETIF_CHECKSUM_ENABLE_ALL & ~NETIF_CHECKSUM_CHECK_TCP);
#endif
  netif_set_up(&r.netif);
  netif_set_link_up(&r.netif);

  // Tunnel::startListening.
  ip_addr_t local;
  ip_addr_copy_from_ip6(local, ours);
  struct tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_V6);
  FUZZ_CHECK(pcb, "tcp_new failed");
  tcp_bind_netif(pcb, &r.netif);
  FUZZ_CHECK(tcp_bind(pcb, &local, kListenPort) == ERR_OK, "tcp_bind failed");
  struct tcp_pcb* listening = tcp_listen(pcb);
  FUZZ_CHECK(listening, "tcp_listen failed");
  tcp_accept(listening, onAccept);

  // Stream::connect, from a fixed port.
  if (!(flags & 32)) {
    struct tcp_pcb* c = tcp_new_ip_type(IPADDR_TYPE_V6);
    FUZZ_CHECK(c, "tcp_new failed");
    tcp_bind_netif(c, &r.netif);
    FUZZ_CHECK(tcp_bind(c, &local, kConnectPort) == ERR_OK, "tcp_bind failed");
    bindPcb(c, &r);
    ip_addr_t dest;
    ip_addr_copy_from_ip6(dest, peer);
    FUZZ_CHECK(tcp_connect(c, &dest, kRemotePort, onConnected) == ERR_OK, "tcp_connect failed");
  }

  std::vector<uint8_t> packet;
  while (!in.done()) {
    uint16_t prefix = in.u16();
    size_t len = prefix & 0x0fff;
    const uint8_t* bytes = in.bytes(len);
    tick(prefix >> 14);
    packet.assign(bytes, bytes + len);
    if (packet.size() < 40) packet.resize(40);  // zeros: the framer's packets are at least a header
    feed(packet.data(), packet.size(), prefix);
  }
  teardown();
  run = nullptr;
  return 0;
}
