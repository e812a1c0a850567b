// The TX offloads an iavf does in hardware and Linux always turns on: IPv4 header checksum, TCP/UDP
// checksum, SCTP CRC32c, TCP segmentation. Pure byte work on frames the data path already copied out of guest
// memory (no Node-API here); the same algorithms as packages/driver-iavf/src/datapath/checksum.ts,
// byte for byte, so the two data paths can be compared. Every index is checked against the frame's
// length: bytes past the end read as 0 and are never written.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emu {
namespace iavf {

struct Layers {
  size_t l3 = 0;  // offset of the IP header
  size_t l4 = 0;  // offset of the L4 header (may lie past the end of a truncated frame)
  bool ipv4 = false;
  uint8_t proto = 0;
};

// Finds the IP and L4 headers of an Ethernet frame (one VLAN tag allowed); false if not IPv4/IPv6.
bool ParseLayers(const uint8_t* frame, size_t length, Layers* out);

// IPv4 header checksum (only for IPv4 layers).
void FixIpv4Checksum(uint8_t* frame, size_t length, const Layers& at);

// TCP or UDP checksum, or SCTP's CRC32c, computed from scratch over the rest of the frame (other
// protocols untouched).
void FixL4Checksum(uint8_t* frame, size_t length, const Layers& at);

// Whether a TSO request can be segmented: a TCP frame whose header length from the descriptor
// (hdr_len = MACLEN + IPLEN + L4LEN) is exactly its Ethernet + IP + TCP headers (TCP data offset of at
// least 20 bytes), with payload after them, and an MSS iavf would use (iavf_features_check turns GSO
// off below 64 bytes).
constexpr uint32_t kMinMss = 64;
bool TsoValid(const uint8_t* frame, size_t length, const Layers& at, size_t hdr_len, uint32_t mss);

// Bytes of segment i (0-based) of a TSO: hdr_len + min(mss, what is left).
inline size_t TsoSegmentLength(size_t length, size_t hdr_len, uint32_t mss, size_t i) {
  size_t payload = length - hdr_len;
  size_t off = i * mss;
  size_t left = payload - off;
  return hdr_len + (left < mss ? left : mss);
}

inline size_t TsoSegments(size_t length, size_t hdr_len, uint32_t mss) {
  size_t payload = length - hdr_len;
  return (payload + mss - 1) / mss;
}

// Builds segment i of a TSO into out (TsoSegmentLength bytes): headers replicated, IPv4 total length,
// id (+i) and checksum, IPv6 payload length, TCP sequence number, flags (FIN/PSH on the last segment
// only, CWR on the first only) and TCP checksum. TsoValid must have held.
void BuildTsoSegment(const uint8_t* frame, size_t length, const Layers& at, size_t hdr_len, uint32_t mss,
                     size_t i, uint8_t* out);

}  // namespace iavf
}  // namespace emu
