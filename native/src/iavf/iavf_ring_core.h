// The iavf ring rules, once, in plain C++ (no Node-API): TX descriptors walked into packets, packets
// made into frames for the wire (checksums, TSO), frames written into RX rings. The Napi functions
// (iavf_rings.cc) and the data plane's workers (dataplane/forwarding.cc) are thin callers of this.
//
// Descriptor formats are Linux 6.12's (drivers/net/ethernet/intel/iavf/iavf_type.h): 16-byte TX data and
// context descriptors; legacy RX descriptors in read and write-back form, 32 bytes (RXDID 1, the
// default) or 16 bytes (RXDID 0: qwords 0 and 1 only). Every guest value (address, length, index) is
// read once into a local and checked before use; nothing a guest writes can make this code touch
// memory outside what its DmaSpace resolves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "iavf/iavf_offloads.h"
#include "memory/dma_space.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "descriptors are little-endian; so must the host be");

namespace emu {
namespace iavf {

constexpr uint32_t kTxDescSize = 16;
constexpr uint32_t kRxDescSize = 32;
constexpr uint32_t kRxDescSize16 = 16;
constexpr uint32_t kMaxRingLen = 8192;  // the tail registers have 13 bits

// Linux chains at most 8 buffers per packet (more for TSO, which only bounds each MSS's window), and a
// buffer holds at most 16383 bytes (BUF_SZ has 14 bits).
constexpr uint32_t kMaxTxBuffers = 16;
constexpr uint32_t kMaxTsoBuffers = 64;
constexpr size_t kMaxFrame = 16 * 1024;
constexpr size_t kMaxTso = 256 * 1024;
constexpr size_t kMinFrame = 14;
constexpr uint32_t kMaxRxChunks = 5;

// Descriptor fields (iavf_type.h): TX DTYPE and CMD, the RX write-back's DD bit.
constexpr uint64_t kDtypeData = 0x0;
constexpr uint64_t kDtypeContext = 0x1;
constexpr uint64_t kDtypeDone = 0xf;
constexpr uint32_t kCmdEop = 0x001;
constexpr uint32_t kCmdRs = 0x002;
constexpr uint32_t kCmdIcrc = 0x004;
constexpr uint32_t kCmdIl2tag1 = 0x008;  // insert the descriptor's L2TAG1 as an 802.1Q tag
constexpr uint32_t kVlanTagLen = 4;
constexpr uint16_t kEthVlanTpid = 0x8100;
constexpr uint64_t kRxDd = 1ull << 0;

// qword1 of a TX data descriptor: DTYPE 0, CMD, BUF_SZ (the guest driver's side, for tests and benches).
inline uint64_t TxDataQw1(uint32_t cmd, uint32_t size) {
  return kDtypeData | (static_cast<uint64_t>(cmd) << 4) | (static_cast<uint64_t>(size) << 34);
}

// TX stop reasons; TypeScript sees them by name (kTxStopNames, lib/iavf-rings.ts's IavfTxStop).
enum TxStop : uint32_t {
  kTxCaughtUp = 0,    // head reached tail
  kTxIncomplete = 1,  // a packet has no EOP before the tail yet: head waits at its first descriptor
  kTxIndirect = 2,    // a buffer this caller cannot reach: head at its packet; someone else goes on
  kTxRing = 3,        // the ring is not in one direct, writable range: nothing was done
  kTxBadIndex = 4,    // head or tail beyond the ring: nothing was done
  kTxBudget = 5,      // the pass's frames or bytes are spent: head at the next packet; call again later
  kTxAborted = 6,     // the sink gave up (a JS exception): head at the packet it gave up on
};
inline constexpr const char* kTxStopNames[] = {"caught-up", "incomplete", "indirect", "ring",
                                               "bad-index", "budget",     "aborted"};
static_assert(sizeof(kTxStopNames) / sizeof(kTxStopNames[0]) == kTxAborted + 1);

// TX counters.
enum TxCount : uint32_t {
  kBadAddress = 0,  // a buffer outside guest memory (or not readable)
  kBadLength = 1,   // a buffer of 0 bytes
  kNoEop = 2,       // more buffers than a packet may have, no EOP
  kBadTso = 3,      // a TSO request that cannot be segmented (not TCP, headers, MSS)
  kDropped = 4,     // a packet too short or too long for the wire
  kCompleted = 5,   // descriptors written back with DTYPE 0xF
  kCountSize = 6,
};
inline constexpr const char* kTxCountNames[kCountSize] = {"badAddress", "badLength", "noEop",
                                                          "badTso",     "dropped",   "completed"};

// RX statuses; TypeScript sees them by name (kRxStatusNames, lib/iavf-rings.ts's IavfRxStatus).
enum RxStatus : uint32_t {
  kRxOk = 0,
  kRxNoBuffers = 1,  // fewer free descriptors than the frame needs
  kRxTooBig = 2,     // longer than maxFrame or than 5 buffers
  kRxBadIndex = 3,   // tail (or head) beyond the ring
  kRxBadBuffer = 4,  // a buffer outside guest memory: the frame's descriptors are written back with RXE
  kRxRing = 5,       // the ring is not in one direct, writable range: nothing was done
  kRxIndirect = 6,   // a buffer this caller cannot reach: nothing was done
};
inline constexpr const char* kRxStatusNames[] = {"ok", "no-buffers", "too-big", "bad-index",
                                                 "bad-buffer", "ring", "indirect"};
static_assert(sizeof(kRxStatusNames) / sizeof(kRxStatusNames[0]) == kRxIndirect + 1);

// Guest memory is shared with running vCPUs: descriptor qwords are read with one load each and the
// qword the driver polls is published with a release store.
inline uint64_t Load64(const uint8_t* p) {
  if ((reinterpret_cast<uintptr_t>(p) & 7) == 0) return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
  uint64_t v;
  std::memcpy(&v, p, 8);
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return v;
}

inline void Store64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

inline void StoreRelease64(uint8_t* p, uint64_t v) {
  if ((reinterpret_cast<uintptr_t>(p) & 7) == 0) {
    __atomic_store_n(reinterpret_cast<uint64_t*>(p), v, __ATOMIC_RELEASE);
  } else {
    __atomic_thread_fence(__ATOMIC_RELEASE);
    std::memcpy(p, &v, 8);
  }
}

// A ring's descriptors. Direct memory resolves the whole ring once (the fast path: one branch per
// descriptor); a ring only DMA messages reach (a StagedSpace over fd-less RAM) is looked up a run at a
// time, the descriptors from the one asked for up to the limit the caller owns, so a fetch brings what
// the walk will read and no more.
class DescRing {
 public:
  DescRing(const DmaSpace& mem, uint64_t iova, uint32_t len, uint32_t size)
      : mem_(mem), iova_(iova), len_(len), size_(size) {}
  // kOk when the descriptors can be looked up (directly, or run by run); else why not.
  Hit Open() {
    const Hit hit = mem_.Find(iova_, static_cast<uint64_t>(len_) * size_, Access::kReadWrite, &base_);
    return hit == Hit::kIndirect ? Hit::kOk : hit;
  }
  // Descriptor pos of [pos, limit) (wrapping at the ring's end), or nullptr with *hit saying why.
  uint8_t* At(uint32_t pos, uint32_t limit, Hit* hit) {
    if (base_ != nullptr) return base_ + static_cast<size_t>(pos) * size_;
    if (run_ != nullptr && pos >= run_from_ && pos < run_to_) return run_ + static_cast<size_t>(pos - run_from_) * size_;
    const uint32_t to = limit > pos ? limit : len_;
    uint8_t* run = nullptr;
    *hit = mem_.Find(iova_ + static_cast<uint64_t>(pos) * size_, static_cast<uint64_t>(to - pos) * size_,
                     Access::kReadWrite, &run);
    if (*hit != Hit::kOk) return nullptr;
    run_ = run;
    run_from_ = pos;
    run_to_ = to;
    return run_;
  }

 private:
  const DmaSpace& mem_;
  const uint64_t iova_;
  const uint32_t len_;
  const uint32_t size_;
  uint8_t* base_ = nullptr;
  uint8_t* run_ = nullptr;
  uint32_t run_from_ = 0;
  uint32_t run_to_ = 0;
};

struct Part {
  const uint8_t* data;
  uint32_t length;
};

// One finished, good packet: its buffers in guest memory and what its descriptors asked for.
struct TxPacket {
  Part parts[kMaxTsoBuffers + 1];
  uint32_t nparts = 0;
  size_t total = 0;
  bool tso = false;
  uint32_t mss = 0;
  uint32_t tso_len = 0;
  uint32_t cmd = 0;     // the EOP descriptor's CMD
  uint32_t offset = 0;  // its OFFSET field: MACLEN (2-byte units), IPLEN and L4LEN (4-byte units)
  uint16_t l2tag1 = 0;  // its L2TAG1 field: the tag IL2TAG1 inserts

  uint32_t MacLen() const { return (offset & 0x7f) * 2; }
  uint32_t IpLen() const { return ((offset >> 7) & 0x7f) * 4; }
  uint32_t L4Len() const { return ((offset >> 14) & 0xf) * 4; }
  size_t HeaderLength() const { return static_cast<size_t>(MacLen()) + IpLen() + L4Len(); }
  // Copies the packet's bytes, as the wire would have them before offloads, into dest (total bytes).
  void Gather(uint8_t* dest) const;
};

// Where a TX walk's packets go. frames and bytes count what it produced, for the pass's budget.
class TxSink {
 public:
  virtual ~TxSink() = default;
  // A packet whose length suits the wire. False aborts the walk before the packet is completed.
  virtual bool Packet(const TxPacket& p, uint32_t* counts) = 0;
  uint64_t frames = 0;
  uint64_t bytes = 0;
};

struct TxPass {
  uint32_t head;
  uint32_t stop;
  uint32_t counts[kCountSize];
};

// Walks the TX ring [ring, ring + len * 16) from head to tail, packet by packet (context descriptors,
// then data descriptors up to EOP), hands each good packet to the sink and writes DTYPE 0xF into qword1
// of every descriptor with RS of each packet it finished, sent or dropped. A pass starts no packet
// once the sink produced max_frames frames or max_bytes bytes (both >= 1).
TxPass TxWalk(const DmaSpace& mem, uint64_t ring, uint32_t len, uint32_t head, uint32_t tail, uint32_t max_frames,
              uint32_t max_bytes, TxSink& sink);

// Turns the frame at at + 4 (length bytes) into one at `at` with an 802.1Q tag (TCI tci) after its
// MAC addresses; returns the new length.
inline size_t InsertVlanTag(uint8_t* at, size_t length, uint16_t tci) {
  std::memmove(at, at + kVlanTagLen, 12);
  at[12] = kEthVlanTpid >> 8;
  at[13] = kEthVlanTpid & 0xff;
  at[14] = static_cast<uint8_t>(tci >> 8);
  at[15] = static_cast<uint8_t>(tci);
  return length + kVlanTagLen;
}

// The 802.1Q tag of a frame (TPID 0x8100): its TCI, or -1 for an untagged frame.
inline int32_t VlanTci(const uint8_t* frame, size_t length) {
  if (length < kMinFrame + kVlanTagLen || frame[12] != 0x81 || frame[13] != 0x00) return -1;
  return (frame[14] << 8) | frame[15];
}

// Frames for the wire from a packet, as the offloads it asked for make them: IPv4 header and TCP/UDP
// checksums, or TSO segments, then the VLAN tag IL2TAG1 asks for (in every segment). alloc(length)
// gives the bytes to build a frame in (nullptr: give up); done(frame, length) takes it (false: give
// up). Returns false if it gave up; a TSO that cannot be segmented counts kBadTso and produces nothing.
class FrameBuilder {
 public:
  template <class Alloc, class Done>
  bool Build(const TxPacket& p, uint32_t* counts, Alloc alloc, Done done) {
    const size_t hdr_len = p.HeaderLength();
    const size_t tag = (p.cmd & kCmdIl2tag1) ? kVlanTagLen : 0;
    if (p.tso) {
      scratch_.resize(p.total);
      p.Gather(scratch_.data());
      Layers layers;
      if (!ParseLayers(scratch_.data(), p.total, &layers) ||
          !TsoValid(scratch_.data(), p.total, layers, hdr_len, p.mss)) {
        counts[kBadTso]++;
        return true;
      }
      const size_t n = TsoSegments(p.total, hdr_len, p.mss);
      for (size_t i = 0; i < n; i++) {
        const size_t len = TsoSegmentLength(p.total, hdr_len, p.mss, i);
        uint8_t* seg = alloc(len + tag);
        if (seg == nullptr) return false;
        BuildTsoSegment(scratch_.data(), p.total, layers, hdr_len, p.mss, i, seg + tag);
        if (!done(seg, tag ? InsertVlanTag(seg, len, p.l2tag1) : len)) return false;
      }
      return true;
    }
    uint8_t* frame = alloc(p.total + tag);
    if (frame == nullptr) return false;
    p.Gather(frame + tag);
    FixChecksums(p, frame + tag);
    return done(frame, tag ? InsertVlanTag(frame, p.total, p.l2tag1) : p.total);
  }

 private:
  static void FixChecksums(const TxPacket& p, uint8_t* frame);
  std::vector<uint8_t> scratch_;
};

struct RxQueue {
  uint64_t ring;
  uint32_t len;
  uint32_t buffer_size;
  uint32_t max_frame;
  uint32_t desc_size;  // 16 or 32
};

struct RxResult {
  uint32_t status;
  uint32_t head;
};

// Writes one frame into the RX ring from head (the device owns [head, tail)), split over
// ceil(length / buffer_size) descriptors, each written back in the legacy format: qwords 2-3 zero (the
// 32-byte format only), qword0 the RSS hash (hash >= 0: high dword, FLTSTAT 3 in qword1) and on the
// last the VLAN tag stripped from the frame (l2tag1 >= 0: bits 16-31, L2TAG1P in qword1), then qword1
// (DD, LENGTH_PBUF; on the last, EOF and the frame's PTYPE and checksum status, RxOffloadBits) with a
// release store.
RxResult RxWrite(const DmaSpace& mem, const RxQueue& q, uint32_t head, uint32_t tail, const uint8_t* frame,
                 size_t length, int64_t hash, int32_t l2tag1 = -1);

}  // namespace iavf
}  // namespace emu
