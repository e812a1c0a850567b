// The offloads an iavf does in hardware. TX, which Linux always turns on: IPv4 header checksum,
// TCP/UDP checksum, SCTP CRC32c, TCP segmentation. RX: the packet type and checksum status of the
// write-back. Pure byte work on frames the data path already copied out of guest memory (no
// Node-API here), and the one implementation of these rules: the worker calls it, the TypeScript path
// reaches it through the iavfTxFrames and iavfRxOffloadBits bindings. Every index is checked against
// the frame's length: bytes past the end read as 0 and are never written.
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

// RX write-back qword1 fields (iavf_type.h: IAVF_RX_DESC_STATUS_L3L4P_SHIFT, _ERROR_IPE/L4E_SHIFT,
// IAVF_RXD_QW1_PTYPE_SHIFT).
constexpr uint64_t kRxL3L4p = 1ull << 3;
constexpr uint64_t kRxErrIpe = 1ull << 22;
constexpr uint64_t kRxErrL4e = 1ull << 23;
constexpr int kRxPtypeShift = 30;

// Hardware packet types (PTYPE) of the common frames, as the i40e/iavf packet-type table numbers them
// (Linux 6.12 drivers/net/ethernet/intel/libie/rx.c, libie_rx_pt_lut; DPDK's iavf_get_default_ptype_table).
enum Ptype : uint8_t {
  kPtypeL2 = 1,  // Ethernet, payload not parsed
  kPtypeArp = 11,
  kPtypeIpv4Frag = 22,
  kPtypeIpv4 = 23,  // no L4 the parser knows
  kPtypeIpv4Udp = 24,
  kPtypeIpv4Tcp = 26,
  kPtypeIpv4Sctp = 27,
  kPtypeIpv4Icmp = 28,
  kPtypeIpv6Frag = 88,
  kPtypeIpv6 = 89,
  kPtypeIpv6Udp = 90,
  kPtypeIpv6Tcp = 92,
  kPtypeIpv6Sctp = 93,
  kPtypeIpv6Icmp = 94,
};

// What the device's parser and checksum engine report for a received frame, as bits of the last RX
// descriptor's qword1: PTYPE always; L3L4P when it verified the L4 checksum of an unfragmented
// TCP/UDP/SCTP/ICMP packet (IPv4, or IPv6 without extension headers) whose lengths fit the frame, with
// IPE for a bad IPv4 header checksum and L4E for a bad L4 one. Linux (iavf_rx_checksum) trusts a frame
// with L3L4P and no error (CHECKSUM_UNNECESSARY) and checks any other itself; DPDK (iavf_rxd_to_pkt_flags)
// reports GOOD/BAD flags only under L3L4P.
uint64_t RxOffloadBits(const uint8_t* frame, size_t length);

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
