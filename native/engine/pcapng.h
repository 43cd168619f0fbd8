#pragma once
// pcapng blocks (draft-ietf-opsawg-pcapng), appended to a byte buffer in the
// host's byte order, which the section header's magic announces. Only what
// a capture writes: the section header, interfaces, enhanced packets,
// decryption secrets and interface statistics.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tsmuxd::engine::pcapng {

// Link types (https://www.tcpdump.org/linktypes.html).
constexpr uint16_t kLinkTypeIpv6 = 229;
constexpr uint16_t kLinkTypeUser0 = 147;

// Decryption Secrets Block: a TLS key log (SSLKEYLOGFILE lines).
constexpr uint32_t kSecretsTls = 0x544c534b;

enum class Direction : uint8_t { Unknown = 0, Inbound = 1, Outbound = 2 };

void sectionHeader(std::vector<uint8_t>& out, const std::string& application);
void interfaceDescription(std::vector<uint8_t>& out, uint16_t linkType, const std::string& name,
                          const std::string& description);
// `prefix` is written before `data` as one packet (a synthetic header, say).
void enhancedPacket(std::vector<uint8_t>& out, uint32_t interface, uint64_t timeUs, const uint8_t* prefix,
                    size_t prefixLen, const uint8_t* data, size_t dataLen, Direction direction,
                    const std::string& comment = std::string());
void decryptionSecrets(std::vector<uint8_t>& out, uint32_t type, const uint8_t* data, size_t len);
void interfaceStatistics(std::vector<uint8_t>& out, uint32_t interface, uint64_t timeUs, uint64_t received,
                         uint64_t dropped, const std::string& comment);

}  // namespace tsmuxd::engine::pcapng
