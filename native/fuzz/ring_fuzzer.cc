// libFuzzer target: the iavf ring rules (native/src/iavf_ring_core.*) and the offloads they apply
// (iavf_offloads.*: checksums, SCTP CRC32c, TSO, VLAN tags), on guest memory a hostile guest wrote.
// Built by scripts/fuzz.sh with -fsanitize=fuzzer,address,undefined, without Node-API: the same plain
// C++ the data plane's worker and the JS-thread glue run.
//
// Input: a 16-byte header (what to do, ring length, head, tail, budgets, RX queue shape), then the
// bytes of guest memory, laid out from IOVA kBase (zero past the input's end). A second range
// follows that the caller "cannot reach" (kIndirect), and a read-only one, so every Hit the ring code
// handles is met. After each walk, the invariants the JavaScript side relies on are checked, and the
// same walk over the same bytes as fd-less RAM (a StagedSpace, resumed after each fetch) must agree.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../src/iavf/iavf_offloads.h"
#include "../src/iavf/iavf_ring_core.h"
#include "../src/memory/dma_space.h"
#include "../src/memory/staged_space.h"

#include "check.h"

namespace {

using emu::Hit;
namespace iavf = emu::iavf;

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kSize = 64 * 1024;
constexpr uint64_t kIndirectBase = kBase + kSize;  // right after: crossing into it is a miss
constexpr uint64_t kIndirectSize = 16 * 1024;
constexpr uint64_t kReadOnlyBase = 0x100000;
constexpr uint64_t kReadOnlySize = 16 * 1024;

// Guest memory from the input. Direct: the ranges as host memory (a memfd mapping). Not direct: the
// same ranges as fd-less RAM, reached only through Fetch and Write (DMA_READ and DMA_WRITE), which the
// walks reach through a StagedSpace; the range at kIndirectBase is then one the VMM cannot read either.
class BufferSpace : public emu::DmaSpace {
 public:
  BufferSpace(const uint8_t* data, size_t size, bool direct) : direct_(direct), rw_(kSize, 0), ro_(kReadOnlySize, 0) {
    std::memcpy(rw_.data(), data, size < kSize ? size : kSize);
    if (size > kSize) std::memcpy(ro_.data(), data + kSize, size - kSize < kReadOnlySize ? size - kSize : kReadOnlySize);
  }
  Hit Find(uint64_t iova, uint64_t length, emu::Access access, uint8_t** out) const override {
    uint8_t* at = Locate(iova, length);
    if (at == nullptr) return In(iova, length, kIndirectBase, kIndirectSize) ? Hit::kIndirect : Hit::kMiss;
    if (at >= ro_.data() && at < ro_.data() + ro_.size() && access != emu::Access::kRead) return Hit::kDenied;
    if (!direct_) return Hit::kIndirect;
    *out = at;
    return Hit::kOk;
  }
  // DMA_READ: the bytes, or nullptr where the VMM has none.
  const uint8_t* Fetch(uint64_t iova, uint64_t length) const { return Locate(iova, length); }
  // DMA_WRITE: fails where the VMM has no memory (an RX buffer the walk could not check); never asked
  // of read-only memory.
  void Write(uint64_t iova, const std::vector<uint8_t>& bytes) const {
    uint8_t* at = Locate(iova, bytes.size());
    if (at == nullptr) return;
    if (at >= ro_.data() && at < ro_.data() + ro_.size()) std::abort();
    std::memcpy(at, bytes.data(), bytes.size());
  }
  bool SameBytes(const BufferSpace& o) const { return rw_ == o.rw_ && ro_ == o.ro_; }

 private:
  static bool In(uint64_t iova, uint64_t length, uint64_t base, uint64_t size) {
    return length > 0 && iova >= base && length <= size && iova - base <= size - length;
  }
  uint8_t* Locate(uint64_t iova, uint64_t length) const {
    if (In(iova, length, kBase, kSize)) return const_cast<uint8_t*>(rw_.data()) + (iova - kBase);
    if (In(iova, length, kReadOnlyBase, kReadOnlySize)) return const_cast<uint8_t*>(ro_.data()) + (iova - kReadOnlyBase);
    return nullptr;
  }

  const bool direct_;
  std::vector<uint8_t> rw_;
  std::vector<uint8_t> ro_;
};


// Builds each packet's frames as the worker does (FrameBuilder) and checks them.
class CheckingSink : public iavf::TxSink {
 public:
  uint64_t digest = 0xcbf29ce484222325ull;  // FNV-1a over every frame built

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
          for (size_t i = 0; i < length; i++) digest = (digest ^ frame[i]) * 0x100000001b3ull;
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

// The same walks over fd-less RAM, as DataPath drives them: through a StagedSpace, each stop for a need
// answered with a fetch (a failed one where the VMM has no bytes) and each call's stores written back
// in order, until a call ends for another reason. Every call adds a window or ends: no livelock.
iavf::TxPass StagedTx(const BufferSpace& mem, uint64_t ring, uint32_t len, uint32_t head, uint32_t tail,
                      uint32_t max_frames, uint32_t max_bytes, iavf::TxSink& sink) {
  emu::StagedSpace stage;
  iavf::TxPass total{head, iavf::kTxCaughtUp, {}};
  for (int calls = 0;; calls++) {
    CHECK(calls < 100000);
    stage.Begin(&mem);
    const iavf::TxPass pass = iavf::TxWalk(stage, ring, len, total.head, tail, max_frames, max_bytes, sink);
    for (const auto& w : stage.TakeWrites()) mem.Write(w.iova, w.bytes);
    for (uint32_t i = 0; i < iavf::kCountSize; i++) total.counts[i] += pass.counts[i];
    total.head = pass.head;
    total.stop = pass.stop;
    const emu::StagedSpace::Range* need = stage.Need();
    if (pass.stop != iavf::kTxIndirect || need == nullptr) return total;
    CHECK(stage.Add(need->iova, mem.Fetch(need->iova, need->length), need->length));
  }
}

iavf::RxResult StagedRx(const BufferSpace& mem, const iavf::RxQueue& q, uint32_t head, uint32_t tail,
                        const uint8_t* frame, size_t length, int64_t hash, int32_t tag) {
  emu::StagedSpace stage;
  for (int calls = 0;; calls++) {
    CHECK(calls < 100000);
    stage.Begin(&mem);
    const iavf::RxResult r = iavf::RxWrite(stage, q, head, tail, frame, length, hash, tag);
    for (const auto& w : stage.TakeWrites()) mem.Write(w.iova, w.bytes);
    const emu::StagedSpace::Range* need = stage.Need();
    if (r.status != iavf::kRxIndirect || need == nullptr) return r;
    CHECK(stage.Add(need->iova, mem.Fetch(need->iova, need->length), need->length));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = 16;
  if (size < kHeader) return 0;
  const uint8_t* h = data;
  BufferSpace mem(data + kHeader, size - kHeader, true);
  // The oracle for fd-less RAM: the same walk over the same bytes through DMA messages must end the
  // same way and leave the same memory, unless the direct walk met memory it cannot reach.
  BufferSpace fdless(data + kHeader, size - kHeader, false);
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
      CheckingSink twin;
      const iavf::TxPass staged = StagedTx(fdless, ring, len, head, tail, max_frames, max_bytes, twin);
      if (pass.stop == iavf::kTxIndirect) break;
      CHECK(staged.stop == pass.stop);
      CHECK(staged.head == pass.head);
      CHECK(std::memcmp(staged.counts, pass.counts, sizeof(pass.counts)) == 0);
      CHECK(twin.frames == sink.frames && twin.bytes == sink.bytes && twin.digest == sink.digest);
      CHECK(fdless.SameBytes(mem));
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
      // The frame is copied: it is also the guest memory the walk writes.
      const std::vector<uint8_t> frame(data + kHeader, data + kHeader + length);
      iavf::RxResult r = iavf::RxWrite(mem, q, head, tail, frame.data(), length, hash, tag);
      CHECK(r.status <= iavf::kRxIndirect);
      CHECK(r.head < len || r.status == iavf::kRxBadIndex);
      const iavf::RxResult staged = StagedRx(fdless, q, head, tail, frame.data(), length, hash, tag);
      if (r.status == iavf::kRxIndirect) break;
      CHECK(staged.status == r.status && staged.head == r.head);
      CHECK(fdless.SameBytes(mem));
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
