#include "iavf_offloads.h"

#include <cstring>

#include "crc32c.h"

namespace emu {
namespace iavf {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kSctp = 132;

inline uint8_t At(const uint8_t* f, size_t n, size_t i) { return i < n ? f[i] : 0; }

// One's complement sum of 16-bit big-endian words over [start, end), bytes past n as 0; folded.
uint32_t Sum16(const uint8_t* f, size_t n, size_t start, size_t end, uint64_t initial) {
  uint64_t sum = initial;
  size_t i = start;
  // The in-range part, fast.
  size_t stop = end < n ? end : n;
  for (; i + 1 < stop; i += 2) sum += (static_cast<uint32_t>(f[i]) << 8) | f[i + 1];
  // A last odd byte, or the zero-padded tail past n.
  for (; i + 1 < end; i += 2) sum += (static_cast<uint32_t>(At(f, n, i)) << 8) | At(f, n, i + 1);
  if (i < end) sum += static_cast<uint32_t>(At(f, n, i)) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint32_t>(sum);
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

}  // namespace

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
