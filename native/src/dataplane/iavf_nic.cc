#include "dataplane/iavf_nic.h"

#include <algorithm>
#include <iterator>
#include <cstring>

#include "dataplane/mac_table.h"

namespace emu {
namespace iavf {

namespace {

bool Broadcast(const uint8_t* f) { return (f[0] & f[1] & f[2] & f[3] & f[4] & f[5]) == 0xff; }

bool Listed(const NicConfig& cfg, const uint8_t* mac) {
  return !cfg.macs.empty() && std::binary_search(cfg.macs.begin(), cfg.macs.end(), MacAt(mac));
}

// Copies frame[from, to) clamped to the frame, as a subarray would; returns the bytes copied.
size_t CopyClamped(const uint8_t* frame, size_t length, size_t from, size_t to, uint8_t* out) {
  if (from >= length) return 0;
  const size_t end = std::min(to, length);
  std::memcpy(out, frame + from, end - from);
  return end - from;
}

}  // namespace

void CountKind(double* counters, bool tx, const uint8_t* frame) {
  const uint32_t kinds = tx ? kTxKinds : kRxKinds;
  if (!(frame[0] & 1)) {
    counters[kinds]++;
  } else if (Broadcast(frame)) {
    counters[kinds + 2]++;
  } else {
    counters[kinds + 1]++;
  }
}

void CountPacket(double* counters, bool tx, uint32_t q, const uint8_t* frame, size_t length) {
  Stat(counters, tx, q, kPackets)++;
  Stat(counters, tx, q, kBytes) += static_cast<double>(length);
  if (tx) CountKind(counters, true, frame);
}

Egress EgressPolicy(const NicConfig& cfg, const uint8_t* frame, size_t length, uint32_t q, double* counters) {
  if (cfg.spoof_check) {
    const uint8_t* src = frame + 6;
    if (length < kMinFrame || (src[0] & 1) || (std::memcmp(src, cfg.mac, 6) != 0 && !Listed(cfg, src))) {
      Stat(counters, true, q, kDrops)++;
      counters[kSpoofed]++;
      return Egress::kDrop;
    }
  }
  if (cfg.port_vlan == 0) return Egress::kSend;
  // The tag goes after the MAC addresses: a frame without them has nowhere to take it.
  if (VlanTci(frame, length) < 0 && length >= 12) return Egress::kTagPortVlan;
  Stat(counters, true, q, kDrops)++;
  return Egress::kDrop;
}

size_t StripVlanTag(const uint8_t* frame, size_t length, uint8_t* out) {
  std::memcpy(out, frame, 12);
  std::memcpy(out + 12, frame + 12 + kVlanTagLen, length - 12 - kVlanTagLen);
  return length - kVlanTagLen;
}

namespace {

bool VlanAccepts(const NicConfig& cfg, const uint8_t* frame, size_t length) {
  const int32_t tci = VlanTci(frame, length);
  const uint16_t vid = tci < 0 ? 0 : static_cast<uint16_t>(tci & 0xfff);
  if (cfg.port_vlan != 0) return tci >= 0 && vid == cfg.port_vlan;
  if (vid == 0 || cfg.vlans.empty()) return true;
  return std::binary_search(cfg.vlans.begin(), cfg.vlans.end(), vid);
}

}  // namespace

bool Accepts(const NicConfig& cfg, const uint8_t* frame, size_t length) {
  if (length < kMinFrame) return false;
  if (!VlanAccepts(cfg, frame, length)) return false;
  if (cfg.promisc & 0x1) return true;
  if (frame[0] & 1) {
    if (Broadcast(frame)) return true;
    return (cfg.promisc & 0x2) != 0 || Listed(cfg, frame);
  }
  if (std::memcmp(frame, cfg.mac, 6) == 0) return true;
  return Listed(cfg, frame);
}

void NicConfig::PrepareRss() {
  const bool key_set = std::any_of(std::begin(rss_key), std::end(rss_key), [](uint8_t b) { return b != 0; });
  rss_table.assign(key_set ? kRssMaxInput * 256 : 0, 0);
  if (!key_set) return;
  // window(k): the key's bits k .. k + 31, big-endian (bits past the key are 0).
  auto bit = [&](size_t k) -> uint32_t { return k / 8 < kRssKeySize ? (rss_key[k / 8] >> (7 - k % 8)) & 1u : 0u; };
  auto window = [&](size_t k) {
    uint32_t w = 0;
    for (size_t j = 0; j < 32; j++) w = (w << 1) | bit(k + j);
    return w;
  };
  for (size_t i = 0; i < kRssMaxInput; i++) {
    uint32_t per_bit[8];
    for (size_t j = 0; j < 8; j++) per_bit[j] = window(8 * i + j);  // bit 7 - j of input byte i
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t h = 0;
      for (size_t j = 0; j < 8; j++) {
        if (b & (0x80u >> j)) h ^= per_bit[j];
      }
      rss_table[i * 256 + b] = h;
    }
  }
}

uint32_t Toeplitz(const NicConfig& cfg, const uint8_t* input, size_t length) {
  uint32_t hash = 0;
  const uint32_t* table = cfg.rss_table.data();
  for (size_t i = 0; i < length && i < kRssMaxInput; i++) hash ^= table[i * 256 + input[i]];
  return hash;
}

size_t RssInput(const uint8_t* frame, size_t length, uint8_t* out) {
  Layers layers;
  if (!ParseLayers(frame, length, &layers)) return 0;
  size_t n = layers.ipv4 ? CopyClamped(frame, length, layers.l3 + 12, layers.l3 + 20, out)
                         : CopyClamped(frame, length, layers.l3 + 8, layers.l3 + 40, out);
  if ((layers.proto == 6 || layers.proto == 17) && length >= layers.l4 + 4) {
    std::memcpy(out + n, frame + layers.l4, 4);
    n += 4;
  }
  return n;
}

RxRoute Route(const NicConfig& cfg, const uint8_t* frame, size_t length, double* counters) {
  if (!Accepts(cfg, frame, length)) {
    counters[kFiltered]++;
    return {false, 0, -1};
  }
  CountKind(counters, false, frame);
  uint32_t q = 0;
  int64_t hash = -1;
  const uint32_t enabled = cfg.rx_enabled;
  // The hash is reported whenever the VF set a key (the stack uses it for flow steering); it picks
  // the queue only when more than one is enabled.
  if (!cfg.rss_table.empty()) {
    uint8_t input[kRssMaxInput];
    const size_t n = RssInput(frame, length, input);
    if (n > 0) {
      const uint32_t h = Toeplitz(cfg, input, n);
      hash = h;
      if (enabled & (enabled - 1)) q = cfg.rss_lut[h % kRssLutSize] % std::max(1u, cfg.num_queue_pairs);
    }
  }
  if (q >= kQueues || cfg.rx[q].len == 0 || !(enabled & (1u << q))) {
    if (q < kQueues) Stat(counters, false, q, kDrops)++;
    return {false, q, -1};
  }
  RxRoute route{true, q, hash};
  const int32_t tci = VlanTci(frame, length);
  if (tci >= 0 && (cfg.port_vlan != 0 || cfg.vlan_strip)) {
    route.strip = true;
    route.report = cfg.port_vlan == 0;
    route.tci = static_cast<uint16_t>(tci);
  }
  return route;
}

}  // namespace iavf
}  // namespace emu
