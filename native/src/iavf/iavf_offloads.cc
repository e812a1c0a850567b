#include "iavf/iavf_offloads.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "iavf/crc32c.h"

namespace emu {
namespace iavf {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIcmpV6 = 58;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kSctp = 132;
// IPv6 extension headers the parser walks over (RFC 8200 4.1), and the fragment header.
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6DestOpts = 60;
constexpr int kMaxIpv6ExtHeaders = 4;

inline uint16_t Be16(const uint8_t* f, size_t i) { return static_cast<uint16_t>((f[i] << 8) | f[i + 1]); }

// One's complement sum (RFC 1071) of [p, p + len) as 16-bit big-endian words, an odd last byte as the
// high byte of a word, not folded. Loads little-endian words eight bytes at a time: the sum of
// byte-swapped words is the byte-swapped sum (RFC 1071 2(B)), swapped back by the caller after folding.
// With SSE2, 32 bytes at a time: each 32-bit word widened into its own 64-bit lane, four lane pairs
// summed apart (GCC's -O2 does not vectorize the plain loop: it ran at a third of this speed over a
// 1500-byte frame, a third of the data plane's time when it checks RX checksums).
uint64_t OnesSumSwapped(const uint8_t* p, size_t len) {
  uint64_t acc = 0;
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  __m128i a = zero, b = zero, c = zero, d = zero;
  for (; i + 32 <= len; i += 32) {
    const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16));
    a = _mm_add_epi64(a, _mm_unpacklo_epi32(w, zero));
    b = _mm_add_epi64(b, _mm_unpackhi_epi32(w, zero));
    c = _mm_add_epi64(c, _mm_unpacklo_epi32(x, zero));
    d = _mm_add_epi64(d, _mm_unpackhi_epi32(x, zero));
  }
  uint64_t lanes[2];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), _mm_add_epi64(_mm_add_epi64(a, b), _mm_add_epi64(c, d)));
  acc = lanes[0] + lanes[1];
#endif
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc += (w & 0xffffffffu) + (w >> 32);  // two 32-bit halves: no carry lost below 16 GiB
  }
  for (; i + 2 <= len; i += 2) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    acc += w;
  }
  if (i < len) acc += p[i];
  return acc;
}

inline uint32_t Fold(uint64_t sum) {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint32_t>(sum);
}

// One's complement sum of 16-bit big-endian words over [start, end) plus initial, bytes past n as 0;
// folded.
uint32_t Sum16(const uint8_t* f, size_t n, size_t start, size_t end, uint64_t initial) {
  const size_t stop = end < n ? end : n;
  if (start >= stop) return Fold(initial);
  const uint32_t swapped = Fold(OnesSumSwapped(f + start, stop - start));
  return Fold(initial + (((swapped & 0xff) << 8) | (swapped >> 8)));
}

inline uint16_t Finish(uint32_t sum) { return static_cast<uint16_t>(~sum & 0xffff); }

inline void Put16(uint8_t* f, size_t n, size_t i, uint16_t v) {
  if (i + 1 < n) {
    f[i] = static_cast<uint8_t>(v >> 8);
    f[i + 1] = static_cast<uint8_t>(v);
  }
}

uint32_t PseudoHeader(const uint8_t* f, size_t n, const Layers& at, size_t l4_length) {
  uint32_t sum = at.ipv4 ? Sum16(f, n, at.l3 + 12, at.l3 + 20, 0) : Sum16(f, n, at.l3 + 8, at.l3 + 40, 0);
  const uint8_t tail[6] = {0, 0, 0, at.proto, static_cast<uint8_t>(l4_length >> 8), static_cast<uint8_t>(l4_length)};
  return Sum16(tail, 6, 0, 6, sum);
}

// SCTP's CRC32c over [l4, end) with the checksum field read as zero, against the field (its
// little-endian bytes, RFC 4960 6.8 as Linux's sctp_compute_cksum stores it).
bool SctpCrcOk(const uint8_t* f, size_t l4, size_t end) {
  static constexpr uint8_t kZero[4] = {0, 0, 0, 0};
  uint32_t crc = Crc32c(f + l4, 8);
  crc = Crc32c(kZero, 4, crc);
  crc = Crc32c(f + l4 + 12, end - l4 - 12, crc);
  const uint32_t stored = static_cast<uint32_t>(f[l4 + 8]) | (static_cast<uint32_t>(f[l4 + 9]) << 8) |
                          (static_cast<uint32_t>(f[l4 + 10]) << 16) | (static_cast<uint32_t>(f[l4 + 11]) << 24);
  return crc == stored;
}

// Whether the L4 message in [at.l4, end) carries a correct checksum: TCP, UDP, ICMPv6 with their
// pseudo-header, ICMP without, SCTP's CRC32c. A message too short for its header is not correct.
bool L4ChecksumOk(const uint8_t* f, size_t end, const Layers& at) {
  const size_t len = end - at.l4;
  switch (at.proto) {
    case kTcp:
      return len >= 20 && Sum16(f, end, at.l4, end, PseudoHeader(f, end, at, len)) == 0xffff;
    case kUdp: {
      if (len < 8) return false;
      const size_t ulen = Be16(f, at.l4 + 4);
      if (ulen < 8 || ulen > len) return false;
      // No checksum: allowed over IPv4 (RFC 768), not over IPv6 (RFC 8200 8.1).
      if (Be16(f, at.l4 + 6) == 0) return at.ipv4;
      return Sum16(f, at.l4 + ulen, at.l4, at.l4 + ulen, PseudoHeader(f, end, at, ulen)) == 0xffff;
    }
    case kSctp:
      return len >= 12 && SctpCrcOk(f, at.l4, end);
    case kIcmp:
      return len >= 8 && Sum16(f, end, at.l4, end, 0) == 0xffff;
    case kIcmpV6:
      return len >= 8 && Sum16(f, end, at.l4, end, PseudoHeader(f, end, at, len)) == 0xffff;
    default:
      return false;
  }
}

inline uint64_t PtypeBits(uint8_t ptype) { return static_cast<uint64_t>(ptype) << kRxPtypeShift; }

// PTYPE of an unfragmented IP packet carrying proto; base is kPtypeIpv4 or kPtypeIpv6 (the table's
// IPv4 and IPv6 blocks list UDP, TCP, SCTP and ICMP in the same order).
uint8_t L4Ptype(uint8_t base, uint8_t proto) {
  const bool v4 = base == kPtypeIpv4;
  switch (proto) {
    case kUdp:
      return static_cast<uint8_t>(base + (kPtypeIpv4Udp - kPtypeIpv4));
    case kTcp:
      return static_cast<uint8_t>(base + (kPtypeIpv4Tcp - kPtypeIpv4));
    case kSctp:
      return static_cast<uint8_t>(base + (kPtypeIpv4Sctp - kPtypeIpv4));
    case kIcmp:
      return v4 ? static_cast<uint8_t>(kPtypeIpv4Icmp) : base;
    case kIcmpV6:
      return v4 ? base : static_cast<uint8_t>(kPtypeIpv6Icmp);
    default:
      return base;
  }
}

// The L4 verdict on a parsed, unfragmented IP packet whose PTYPE names its L4 protocol.
uint64_t L4Verdict(const uint8_t* f, size_t end, const Layers& at, uint8_t ptype, uint8_t l3_only) {
  if (ptype == l3_only) return PtypeBits(ptype);  // no L4 the device checks: nothing verified
  return PtypeBits(ptype) | kRxL3L4p | (L4ChecksumOk(f, end, at) ? 0 : kRxErrL4e);
}

}  // namespace

uint64_t RxOffloadBits(const uint8_t* f, size_t n) {
  if (n < 14) return 0;
  size_t l3 = 14;
  uint16_t type = Be16(f, 12);
  if (type == kEthVlan && n >= 18) {
    type = Be16(f, 16);
    l3 = 18;
  }
  if (type == kEthArp) return PtypeBits(kPtypeArp);
  if (type == kEthIpv4) {
    if (n < l3 + 20 || (f[l3] >> 4) != 4) return PtypeBits(kPtypeIpv4);
    const size_t ihl = static_cast<size_t>(f[l3] & 0xf) * 4;
    const size_t total = Be16(f, l3 + 2);
    // A header or total length that does not fit: nothing verified, the stack judges the packet.
    if (ihl < 20 || total < ihl || l3 + total > n) return PtypeBits(kPtypeIpv4);
    if ((Be16(f, l3 + 6) & 0x3fff) != 0) return PtypeBits(kPtypeIpv4Frag);  // MF or an offset
    const Layers at{l3, l3 + ihl, true, f[l3 + 9]};
    const uint64_t ipe = Sum16(f, n, l3, l3 + ihl, 0) == 0xffff ? 0 : kRxErrIpe;
    const uint64_t bits = L4Verdict(f, l3 + total, at, L4Ptype(kPtypeIpv4, at.proto), kPtypeIpv4);
    return bits & kRxL3L4p ? bits | ipe : bits;
  }
  if (type == kEthIpv6) {
    if (n < l3 + 40 || (f[l3] >> 4) != 6) return PtypeBits(kPtypeIpv6);
    const size_t end = l3 + 40 + Be16(f, l3 + 4);
    if (end > n) return PtypeBits(kPtypeIpv6);
    uint8_t next = f[l3 + 6];
    size_t l4 = l3 + 40;
    bool extended = false;
    for (int i = 0; i < kMaxIpv6ExtHeaders; i++) {
      if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6DestOpts) break;
      if (l4 + 8 > end) return PtypeBits(kPtypeIpv6);
      next = f[l4];
      l4 += (static_cast<size_t>(f[l4 + 1]) + 1) * 8;
      extended = true;
    }
    if (next == kIpv6Fragment) return PtypeBits(kPtypeIpv6Frag);
    const uint8_t ptype = L4Ptype(kPtypeIpv6, next);
    // Behind extension headers (a routing header changes the pseudo-header's destination), the type
    // only: the stack checks the sum (Linux's iavf_rx_checksum does too when IPV6EXADD is set).
    if (extended || l4 > end) return PtypeBits(ptype);
    return L4Verdict(f, end, Layers{l3, l4, false, next}, ptype, kPtypeIpv6);
  }
  return PtypeBits(kPtypeL2);
}

bool ParseLayers(const uint8_t* f, size_t n, Layers* out) {
  if (n < 14) return false;
  size_t l3 = 14;
  uint16_t type = static_cast<uint16_t>((f[12] << 8) | f[13]);
  if (type == kEthVlan && n >= 18) {
    type = static_cast<uint16_t>((f[16] << 8) | f[17]);
    l3 = 18;
  }
  if (type == kEthIpv4 && n >= l3 + 20) {
    *out = Layers{l3, l3 + static_cast<size_t>(f[l3] & 0xf) * 4, true, f[l3 + 9]};
    return true;
  }
  if (type == kEthIpv6 && n >= l3 + 40) {
    *out = Layers{l3, l3 + 40, false, f[l3 + 6]};
    return true;
  }
  return false;
}

void FixIpv4Checksum(uint8_t* f, size_t n, const Layers& at) {
  if (!at.ipv4 || n < at.l3 + 20) return;
  f[at.l3 + 10] = 0;
  f[at.l3 + 11] = 0;
  Put16(f, n, at.l3 + 10, Finish(Sum16(f, n, at.l3, at.l4, 0)));
}

void FixL4Checksum(uint8_t* f, size_t n, const Layers& at) {
  if (at.proto == kSctp) {
    // RFC 4960 6.8: CRC32c over the whole SCTP packet with its checksum field zero, stored in the
    // byte order Linux's sctp_compute_cksum gives (the CRC's little-endian bytes).
    constexpr size_t kField = 8;
    if (n < at.l4 + 12) return;
    std::memset(f + at.l4 + kField, 0, 4);
    const uint32_t crc = Crc32c(f + at.l4, n - at.l4);
    for (int i = 0; i < 4; i++) f[at.l4 + kField + i] = static_cast<uint8_t>(crc >> (8 * i));
    return;
  }
  size_t field = at.proto == kTcp ? 16 : at.proto == kUdp ? 6 : 0;
  if (field == 0 || n < at.l4 + field + 2) return;
  size_t l4_length = n - at.l4;
  f[at.l4 + field] = 0;
  f[at.l4 + field + 1] = 0;
  uint16_t c = Finish(Sum16(f, n, at.l4, n, PseudoHeader(f, n, at, l4_length)));
  if (c == 0 && at.proto == kUdp) c = 0xffff;
  Put16(f, n, at.l4 + field, c);
}

bool TsoValid(const uint8_t* f, size_t n, const Layers& at, size_t hdr_len, uint32_t mss) {
  if (at.proto != kTcp || n < at.l4 + 20) return false;
  const size_t tcp_len = static_cast<size_t>(f[at.l4 + 12] >> 4) * 4;
  return tcp_len >= 20 && hdr_len == at.l4 + tcp_len && hdr_len < n && mss >= kMinMss;
}

void BuildTsoSegment(const uint8_t* f, size_t n, const Layers& at, size_t hdr_len, uint32_t mss, size_t i,
                     uint8_t* seg) {
  const size_t payload = n - hdr_len;
  const size_t off = i * static_cast<size_t>(mss);
  const size_t len = TsoSegmentLength(n, hdr_len, mss, i);
  const size_t body = len - hdr_len;
  const bool last = off + body >= payload;
  std::memcpy(seg, f, hdr_len);
  std::memcpy(seg + hdr_len, f + hdr_len + off, body);
  if (at.ipv4) {
    uint16_t id = static_cast<uint16_t>(((f[at.l3 + 4] << 8) | f[at.l3 + 5]) + i);
    Put16(seg, len, at.l3 + 2, static_cast<uint16_t>(len - at.l3));
    Put16(seg, len, at.l3 + 4, id);
    FixIpv4Checksum(seg, len, at);
  } else {
    Put16(seg, len, at.l3 + 4, static_cast<uint16_t>(len - at.l3 - 40));
  }
  const uint32_t base_seq = (static_cast<uint32_t>(f[at.l4 + 4]) << 24) | (static_cast<uint32_t>(f[at.l4 + 5]) << 16) |
                            (static_cast<uint32_t>(f[at.l4 + 6]) << 8) | f[at.l4 + 7];
  const uint32_t seq = base_seq + static_cast<uint32_t>(off);
  seg[at.l4 + 4] = static_cast<uint8_t>(seq >> 24);
  seg[at.l4 + 5] = static_cast<uint8_t>(seq >> 16);
  seg[at.l4 + 6] = static_cast<uint8_t>(seq >> 8);
  seg[at.l4 + 7] = static_cast<uint8_t>(seq);
  uint8_t flags = f[at.l4 + 13];
  if (!last) flags &= static_cast<uint8_t>(~(0x01 | 0x08));  // FIN, PSH
  if (i > 0) flags &= static_cast<uint8_t>(~0x80);             // CWR
  seg[at.l4 + 13] = flags;
  FixL4Checksum(seg, len, at);
}

}  // namespace iavf
}  // namespace emu
