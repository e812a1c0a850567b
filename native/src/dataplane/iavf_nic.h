// An iavf NIC's receive rules and counters in plain C++ (no Node-API): the VF's MAC filters and
// promiscuous modes, RSS (Toeplitz over addresses and ports, the VF's key and LUT), the queue a frame
// goes to, and the per-queue counters JavaScript reads without a call (lib/dataplane.ts has the same
// layout). The TX and RX ring walks themselves are iavf_ring_core.h's.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "iavf/iavf_ring_core.h"

namespace emu {
namespace iavf {

constexpr uint32_t kQueues = 16;
constexpr uint32_t kRssKeySize = 52;
constexpr uint32_t kRssLutSize = 64;
constexpr uint32_t kRssMaxInput = 40;  // IPv6 addresses and ports: 36

// Counters, as doubles (exact to 2^53), in one array: per queue packets, bytes, drops (no buffers,
// queue disabled, bad descriptors) and errors (descriptors the guest got wrong); packets by kind;
// frames the filters turned away.
enum QueueStat : uint32_t { kPackets = 0, kBytes = 1, kDrops = 2, kErrors = 3, kQueueStats = 4 };
constexpr uint32_t kTxStats = 0;
constexpr uint32_t kRxStats = kQueues * kQueueStats;
constexpr uint32_t kRxKinds = 2 * kQueues * kQueueStats;  // unicast, multicast, broadcast
constexpr uint32_t kTxKinds = kRxKinds + 3;
constexpr uint32_t kFiltered = kTxKinds + 3;
constexpr uint32_t kSpoofed = kFiltered + 1;  // TX frames the spoof check dropped (also TX drops)
constexpr uint32_t kCounterCount = kSpoofed + 1;

inline double& Stat(double* counters, bool tx, uint32_t q, QueueStat s) {
  return counters[(tx ? kTxStats : kRxStats) + q * kQueueStats + s];
}

// What the VF configured through virtchnl, as the data path needs it.
constexpr uint8_t kNoVector = 0xff;

struct NicConfig {
  NicConfig() {
    std::fill(std::begin(rx_vector), std::end(rx_vector), kNoVector);
    std::fill(std::begin(tx_vector), std::end(tx_vector), kNoVector);
  }

  uint8_t mac[6] = {};
  std::vector<uint64_t> macs;  // the filter list (MacAt form), sorted
  uint32_t promisc = 0;        // bit 0 unicast, bit 1 multicast (FLAG_VF_*_PROMISC)
  bool spoof_check = false;    // the host's policy: TX frames only from the VF's own addresses
  // VLANs (virtchnl ADD_VLAN(_V2)): the VF's VLAN filter, sorted ids; while it is empty every tag
  // passes, as i40e's VF MAC filters match any VLAN until the VF adds its first one.
  std::vector<uint16_t> vlans;
  bool vlan_strip = false;  // 802.1Q tags go from the frame into the RX descriptor (L2TAG1)
  // The host's port VLAN (devargs vlan, 1-4094; 0: none): the VF sends and receives untagged, the wire
  // carries the tag, and the VF never sees it.
  uint16_t port_vlan = 0;
  uint8_t rss_key[kRssKeySize] = {};
  uint8_t rss_lut[kRssLutSize] = {};
  uint32_t num_queue_pairs = 1;
  uint64_t tx_ring[kQueues] = {};
  uint32_t tx_len[kQueues] = {};  // 0: not configured
  RxQueue rx[kQueues] = {};       // len 0: not configured
  uint32_t tx_enabled = 0;
  uint32_t rx_enabled = 0;
  // CONFIG_IRQ_MAP: each queue's MSI-X vector (kNoVector: none) and the ITR index its causes use.
  uint8_t rx_vector[kQueues];
  uint8_t tx_vector[kQueues];
  uint8_t rx_itr[kQueues] = {};
  uint8_t tx_itr[kQueues] = {};

  // The Toeplitz hash by table: rss_table[i * 256 + b] is what input byte i of value b XORs into the
  // hash, so a hash costs one lookup per input byte instead of eight shifts and tests. Built from
  // rss_key by PrepareRss (40 KiB, for the 36 bytes an IPv6/TCP input has at most); empty while the
  // key is all zero (no RSS: no hash is reported).
  std::vector<uint32_t> rss_table;

  // Builds rss_table from rss_key.
  void PrepareRss();
};

// Counts one packet of a queue, and for TX its kind (unicast, multicast, broadcast); Route counts the
// RX kinds.
void CountPacket(double* counters, bool tx, uint32_t q, const uint8_t* frame, size_t length);

// What the host does with a frame the VF sends from TX queue q, a dropped one counted as a TX drop on q:
// - the spoof check a PF applies (i40e/ice MAC anti-spoof): with it on, a frame goes out only with a
//   source address the VF owns (its MAC or a unicast filter it added); a drop also counts kSpoofed;
// - with a port VLAN, a frame the VF tagged itself is dropped and any other gets the port's tag.
enum class Egress { kDrop, kSend, kTagPortVlan };
Egress EgressPolicy(const NicConfig& cfg, const uint8_t* frame, size_t length, uint32_t q, double* counters);

// Whether the VF's filters take the frame: its VLAN (the port VLAN's tag, or a tag the VLAN filter
// lists; untagged frames always), then its MAC (own MAC, listed MACs, broadcast, promiscuous modes).
bool Accepts(const NicConfig& cfg, const uint8_t* frame, size_t length);

// The Toeplitz hash of input under the VF's key (a 32-bit window of the key, one bit per input bit),
// from the table PrepareRss built.
uint32_t Toeplitz(const NicConfig& cfg, const uint8_t* input, size_t length);

// The RSS input of a frame into out (at least 36 bytes): IPv4 or IPv6 addresses, then the ports for
// TCP and UDP. Returns its length; 0 for a frame that is not IP.
size_t RssInput(const uint8_t* frame, size_t length, uint8_t* out);

struct RxRoute {
  bool ok;       // false: filtered, or its queue is not there (counted)
  uint32_t q;
  int64_t hash;  // -1: none
  // The 802.1Q tag to take out of the frame before it is written (port VLAN, or stripping on), and
  // whether the descriptor reports it (L2TAG1: stripping; a port VLAN is hidden).
  bool strip = false;
  bool report = false;
  uint16_t tci = 0;
};

// Copies frame without its 802.1Q tag (bytes 12-15) into out (length - 4 bytes); returns that length.
size_t StripVlanTag(const uint8_t* frame, size_t length, uint8_t* out);

// The filters and RSS: the queue a frame goes to. A filtered frame counts kFiltered (and nothing
// else: it never reached the VF); any other counts its RX kind here, delivered or not, as a PF's
// per-VSI counters do (GLV_UPRC/MPRC/BPRC count the packets of rx_discards too: DPDK's iavf takes
// rx_discards off their sum), and one whose queue is unconfigured or disabled counts a drop on it.
RxRoute Route(const NicConfig& cfg, const uint8_t* frame, size_t length, double* counters);

}  // namespace iavf
}  // namespace emu
