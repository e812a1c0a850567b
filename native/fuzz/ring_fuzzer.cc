// libFuzzer target: the iavf ring rules (native/src/iavf_ring_core.*) and the offloads they apply
// (iavf_offloads.*: checksums, SCTP CRC32c, TSO, VLAN tags), on guest memory a hostile guest wrote.
// Built by scripts/fuzz.sh with -fsanitize=fuzzer,address,undefined, without Node-API: the same plain
// C++ the data plane's worker and the JS-thread glue run.
//
// Input: a 16-byte header (what to do, ring length, head, tail, budgets, RX queue shape), then the
// bytes of guest memory, laid out from IOVA kBase (zero past the input's end). A second range
// follows that the caller "cannot reach" (kIndirect), and a read-only one, so every Hit the ring code
// handles is met. After each walk, the invariants the JavaScript side relies on are checked.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/iavf/iavf_offloads.h"
#include "../src/iavf/iavf_ring_core.h"
#include "../src/memory/dma_space.h"

namespace {

using emu::Hit;
namespace iavf = emu::iavf;

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kSize = 64 * 1024;
constexpr uint64_t kIndirectBase = kBase + kSize;  // right after: crossing into it is a miss
constexpr uint64_t kIndirectSize = 16 * 1024;
constexpr uint64_t kReadOnlyBase = 0x100000;
constexpr uint64_t kReadOnlySize = 16 * 1024;

class BufferSpace : public emu::DmaSpace {
 public:
  BufferSpace(const uint8_t* data, size_t size) : rw_(kSize, 0), ro_(kReadOnlySize, 0) {
    std::memcpy(rw_.data(), data, size < kSize ? size : kSize);
    if (size > kSize) std::memcpy(ro_.data(), data + kSize, size - kSize < kReadOnlySize ? size - kSize : kReadOnlySize);
  }
  Hit Find(uint64_t iova, uint64_t length, bool write, uint8_t** out) const override {
    auto in = [&](uint64_t base, uint64_t size) {
      return iova >= base && length <= size && iova - base <= size - length;
    };
    if (length == 0) return Hit::kMiss;
    if (in(kBase, kSize)) {
      *out = const_cast<uint8_t*>(rw_.data()) + (iova - kBase);
      return Hit::kOk;
    }
    if (in(kIndirectBase, kIndirectSize)) return Hit::kIndirect;
    if (in(kReadOnlyBase, kReadOnlySize)) {
      if (write) return Hit::kDenied;
      *out = const_cast<uint8_t*>(ro_.data()) + (iova - kReadOnlyBase);
      return Hit::kOk;
    }
    return Hit::kMiss;
  }

 private:
  std::vector<uint8_t> rw_;
  std::vector<uint8_t> ro_;
};

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

// Builds each packet's frames as the worker does (FrameBuilder) and checks them.
class CheckingSink : public iavf::TxSink {
 public:
  bool Packet(const iavf::TxPacket& p, uint32_t* counts) override {
    CHECK(p.total >= iavf::kMinFrame);
    CHECK(p.nparts >= 1 && p.nparts <= iavf::kMaxTsoBuffers + 1);
    size_t sum = 0;
    for (uint32_t i = 0; i < p.nparts; i++) sum += p.parts[i].length;
    CHECK(sum == p.total);
    const size_t limit = (p.tso ? iavf::kMaxTso : iavf::kMaxFrame) + iavf::kVlanTagLen;
    return builder_.Build(
        p, counts,
        [&](size_t length) {
          CHECK(length <= limit);
          frame_.resize(length);
          return frame_.data();
        },
        [&](uint8_t* frame, size_t length) {
          CHECK(length >= iavf::kMinFrame && length <= frame_.size());
          // What the RX side of the peer does with it: parse, classify.
          (void)iavf::RxOffloadBits(frame, length);
          frames++;
          bytes += length;
          return true;
        });
  }

 private:
  iavf::FrameBuilder builder_;
  std::vector<uint8_t> frame_;
};

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 16;
  if (size < kHeader) return 0;
  const uint8_t* h = data;
  BufferSpace mem(data + kHeader, size - kHeader);
  // Rings of 1-64 descriptors somewhere in the first 4 KiB of guest memory (or, rarely, anywhere).
  const uint32_t len = 1 + (h[1] % 64);
  const uint64_t ring = (h[2] & 0x80) ? kBase + U16(h + 2) * 8ull : kBase + (h[2] & 0x7f) * 16ull;
  // Head and tail mostly inside the ring, sometimes past it (the guest wrote a bad tail).
  const uint32_t head = U16(h + 4) % (len + 2);
  const uint32_t tail = U16(h + 6) % (len + 2);
  switch (h[0] % 3) {
    case 0: {
      CheckingSink sink;
      const uint32_t max_frames = 1 + (h[8] % 64);
      const uint32_t max_bytes = 1 + U16(h + 9) * 16u;
      iavf::TxPass pass = iavf::TxWalk(mem, ring, len, head, tail, max_frames, max_bytes, sink);
      CHECK(pass.stop <= iavf::kTxAborted);
      CHECK(pass.head < len || (pass.stop == iavf::kTxBadIndex || pass.stop == iavf::kTxRing));
      break;
    }
    case 1: {
      iavf::RxQueue q;
      q.ring = ring;
      q.len = len;
      q.buffer_size = 128u * (1 + (h[8] % 32));
      q.max_frame = 64u + U16(h + 9) % (iavf::kMaxFrame + 64);
      q.desc_size = (h[11] & 1) ? 32 : 16;
      // The frame: bytes of the input after a length (up to the whole of it).
      const size_t avail = size - kHeader;
      const size_t length = avail == 0 ? 0 : U16(h + 12) % (avail + 1);
      const int64_t hash = (h[14] & 1) ? static_cast<int64_t>(U16(h + 12)) : -1;
      const int32_t tag = (h[14] & 2) ? U16(h + 13) : -1;
      iavf::RxResult r = iavf::RxWrite(mem, q, head, tail, data + kHeader, length, hash, tag);
      CHECK(r.status <= iavf::kRxIndirect);
      CHECK(r.head < len || r.status == iavf::kRxBadIndex);
      break;
    }
    default: {
      // The offloads on a frame as a guest may hand it (checksums over lengths the headers lie about).
      std::vector<uint8_t> frame(data + kHeader, data + size);
      iavf::Layers at;
      if (iavf::ParseLayers(frame.data(), frame.size(), &at)) {
        if (at.ipv4) iavf::FixIpv4Checksum(frame.data(), frame.size(), at);
        iavf::FixL4Checksum(frame.data(), frame.size(), at);
        (void)iavf::RxOffloadBits(frame.data(), frame.size());
      }
      break;
    }
  }
  return 0;
}
