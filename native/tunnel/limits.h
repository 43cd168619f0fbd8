#pragma once
// Every cap of the tunnel layer, named where it binds (as usbmuxd names
// CMD_BUF_SIZE). A peer controls every length these guard.
#include <cstddef>
#include <cstdint>

namespace tsmuxd::tunnel {

// CDTunnel handshake frame: "CDTunnel", a u16 big-endian body length, JSON.
inline constexpr char kCdTunnelMagic[8] = {'C', 'D', 'T', 'u', 'n', 'n', 'e', 'l'};
inline constexpr size_t kCdTunnelHeaderSize = 10;
// A real response is about 250 bytes; the u16 allows 65535, we take 4 KiB.
inline constexpr size_t kMaxCdTunnelBody = 4096;
// The handshake (TLS and the frames) must finish within this.
inline constexpr uint64_t kHandshakeTimeoutMs = 15000;

// IPv6 packets on the stream: a 40-byte header and a u16 payload length
// (no jumbograms), so no packet is larger than this.
inline constexpr size_t kIpv6HeaderSize = 40;
inline constexpr size_t kMaxIpv6Packet = kIpv6HeaderSize + 65535;
inline constexpr uint32_t kMinMtu = 1280;  // IPv6's minimum link MTU
inline constexpr uint32_t kMaxMtu = 65535;
// The send MSS a tunnel starts with, whatever MTU the device grants: real
// devices drop larger packets under sustained load (pymobiledevice3 c3cea12).
inline constexpr uint16_t kDefaultSendMss = 1340;
inline constexpr size_t kTcpIpv6Overhead = 60;  // IPv6 + TCP headers, no options

// Ciphertext waiting for the mux connection's window. Over it a packet is
// dropped, as a full NIC queue drops it, and TCP retransmits.
inline constexpr size_t kMaxQueuedCiphertext = 8u << 20;
// The smallest piece of queued ciphertext sent into a nearly shut mux
// window (smaller waits for the window to open further).
inline constexpr size_t kMinTunnelSend = 16u << 10;
// Plaintext read from TLS per round, before it is cut into packets.
inline constexpr size_t kPlainChunk = 64u << 10;

// At most this many tunnels in a process (each is an lwIP netif; lwIP
// numbers netifs with a u8).
inline constexpr size_t kMaxTunnels = 64;
// TCP streams per tunnel (each may hold up to a 4 MiB window of received
// data that its local socket has not taken, and a 512 KiB send buffer).
inline constexpr size_t kMaxStreamsPerTunnel = 256;
// A stream reads at most this much from its socket per round (lwIP walks its
// unsent list on every tcp_write, so fewer, larger writes are cheaper).
inline constexpr size_t kStreamReadChunk = 64u << 10;
// A stream's first retransmission timeout, before it has measured a round
// trip (lwIP's own is 3 s).
inline constexpr uint32_t kInitialRtoMs = 200;
// How long a tunnel TCP connect may take before it is given up.
inline constexpr uint64_t kDefaultStreamConnectTimeoutMs = 10000;
// After the peer's FIN or reset, what it sent is still written to the local
// socket for this long before the socket is closed.
inline constexpr uint64_t kStreamDrainTimeoutMs = 30000;

// lwIP's own local TCP ports (lwipopts.h, TCP_LOCAL_PORT_RANGE_START):
// above Linux's default ephemeral range (32768-60999), so in TUN mode a
// segment's destination port says whether lwIP or the kernel owns it.
inline constexpr uint16_t kLwipLocalPortFirst = 0xF000;

// The go-ios preamble: 16 bytes of IPv6 destination, a u32 little-endian port.
inline constexpr size_t kPreambleSize = 20;
inline constexpr uint64_t kPreambleTimeoutMs = 10000;
// Connections waiting to send their preamble, per listener.
inline constexpr size_t kMaxPendingPreambles = 64;

}  // namespace tsmuxd::tunnel
