// The iavf data-path rings in native code, on a GuestMemoryTable (see guest_memory.h):
//
//   table.txRing(ring: bigint, ringLen, head, tail, flags, maxFrames, maxBytes) -> TxResult
//   table.rxRing(ring: bigint, ringLen, head, tail, bufferSize, maxFrame, frame, hash, flags) -> number
//   table.guestPostTx(ring: bigint, ringLen, next, count, buffer: bigint, length, cmd) -> next
//   table.guestPostRx(ring: bigint, ringLen, next, count, buffers: bigint, bufferSize, descSize) -> next
//
// Descriptor formats are Linux 6.12's (drivers/net/ethernet/intel/iavf/iavf_type.h): 16-byte TX data and
// context descriptors; legacy RX descriptors in read and write-back form, 32 bytes (RXDID 1, the
// default) or 16 bytes (RXDID 0: qwords 0 and 1 only, for a VF that negotiated it). Every guest value
// (address, length, index) is read once into a local and checked before use; nothing a guest writes
// can make this code touch memory outside the table's ranges. Policy (counters, logs, interrupts,
// filters, RSS) stays in TypeScript: these functions report what happened.
#include <cstdint>
#include <cstring>
#include <vector>

#include "args.h"
#include "errors.h"
#include "guest_memory.h"
#include "iavf_offloads.h"
#include "module.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "descriptors are little-endian; so must the host be");

namespace emu {
namespace {

constexpr uint32_t kTxDescSize = 16;
constexpr uint32_t kRxDescSize = 32;
constexpr uint32_t kRxDescSize16 = 16;
constexpr uint32_t kMaxRingLen = 8192;  // the tail registers have 13 bits

constexpr uint64_t kDtypeData = 0x0;
constexpr uint64_t kDtypeContext = 0x1;
constexpr uint64_t kDtypeDone = 0xf;

constexpr uint32_t kCmdEop = 0x001;
constexpr uint32_t kCmdRs = 0x002;
constexpr uint32_t kCmdIiptMask = 0x060;
constexpr uint32_t kCmdIiptIpv4Csum = 0x060;
constexpr uint32_t kCmdL4tMask = 0x300;
constexpr uint32_t kCtxCmdTso = 0x1;

// Linux chains at most 8 buffers per packet (more for TSO, which only bounds each MSS's window), and a
// buffer holds at most 16383 bytes (BUF_SZ has 14 bits).
constexpr uint32_t kMaxTxBuffers = 16;
constexpr uint32_t kMaxTsoBuffers = 64;
constexpr size_t kMaxFrame = 16 * 1024;
constexpr size_t kMaxTso = 256 * 1024;
constexpr size_t kMinFrame = 14;
constexpr uint32_t kMaxRxChunks = 5;

// Flags.
constexpr uint32_t kTxOffload = 1;  // txRing: do checksums and TSO here (else return packets and their metadata)
constexpr uint32_t kRx16Byte = 1;   // rxRing: the ring holds 16-byte descriptors (RXDID 0)

// TX stop reasons.
enum TxStop : uint32_t {
  kTxCaughtUp = 0,    // head reached tail
  kTxIncomplete = 1,  // a packet has no EOP before the tail yet: head waits at its first descriptor
  kTxIndirect = 2,    // a buffer is reachable only by DMA messages: head at its packet; TypeScript goes on
  kTxRing = 3,        // the ring is not in one direct, writable range: nothing was done
  kTxBadIndex = 4,    // head or tail beyond the ring: nothing was done
  kTxBudget = 5,      // the pass's frames or bytes are spent: head at the next packet; call again later
};

// TX counters (TxResult.counts).
enum TxCount : uint32_t {
  kBadAddress = 0,  // a buffer outside guest memory (or not readable)
  kBadLength = 1,   // a buffer of 0 bytes
  kNoEop = 2,       // more buffers than a packet may have, no EOP
  kBadTso = 3,      // a TSO request that cannot be segmented (not TCP, headers, MSS)
  kDropped = 4,     // a packet too short or too long for the wire
  kCompleted = 5,   // descriptors written back with DTYPE 0xF
  kCountSize = 6,
};

// RX statuses (high half of rxRing's result).
enum RxStatus : uint32_t {
  kRxOk = 0,
  kRxNoBuffers = 1,  // fewer free descriptors than the frame needs
  kRxTooBig = 2,     // longer than maxFrame or than 5 buffers
  kRxBadIndex = 3,   // tail (or head) beyond the ring
  kRxBadBuffer = 4,  // a buffer outside guest memory: the frame's descriptors are written back with RXE
  kRxRing = 5,       // the ring is not in one direct, writable range: nothing was done
  kRxIndirect = 6,   // a buffer reachable only by DMA messages: nothing was done
};

constexpr uint64_t kRxDd = 1ull << 0;
constexpr uint64_t kRxEof = 1ull << 1;
constexpr uint64_t kRxFltstatRss = 3ull << 12;
constexpr uint64_t kRxErrRxe = 1ull << 19;
constexpr int kRxLengthShift = 38;

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

bool ArgU32(const Napi::CallbackInfo& info, size_t i, uint32_t max, uint32_t* out) {
  int64_t v;
  if (!ArgInt(info, i, 0, max, &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

struct Part {
  const uint8_t* data;
  uint32_t length;
};

struct RsDesc {
  uint8_t* at;
  uint64_t qw1;
};

// One packet's descriptors as read, before it is committed.
struct Packet {
  std::vector<Part> parts;
  std::vector<RsDesc> rs;
  size_t total = 0;
  uint32_t buffers = 0;
  uint32_t counts[kCountSize] = {};
  bool bad = false;
  bool tso = false;
  uint32_t mss = 0;
  uint32_t tso_len = 0;
  uint32_t cmd = 0;
  uint32_t offset = 0;

  void Reset() {
    parts.clear();
    rs.clear();
    total = 0;
    buffers = 0;
    std::memset(counts, 0, sizeof(counts));
    bad = false;
    tso = false;
    mss = tso_len = cmd = offset = 0;
  }
};

class TxOutput {
 public:
  TxOutput(Napi::Env env, bool offload) : env_(env), offload_(offload), frames_(Napi::Array::New(env)) {
    if (!offload) meta_ = Napi::Array::New(env);
  }

  // Emits a packet (dropping it if the wire cannot take it); returns false on a JS exception.
  bool Emit(Packet& p) {
    if (p.total < kMinFrame || p.total > kMaxTso || (!p.tso && p.total > kMaxFrame)) {
      p.counts[kDropped]++;
      return true;
    }
    if (!offload_) {
      Napi::Buffer<uint8_t> frame = Gather(p);
      if (env_.IsExceptionPending()) return false;
      uint32_t i = count_;
      Push(frame, p.total);
      // [cmd, MACLEN, IPLEN, L4LEN (bytes), tso, mss, tsoLen]
      Napi::Array m = Napi::Array::New(env_, 7);
      const uint32_t values[7] = {p.cmd,  (p.offset & 0x7f) * 2, ((p.offset >> 7) & 0x7f) * 4, ((p.offset >> 14) & 0xf) * 4,
                                  p.tso ? 1u : 0u, p.mss, p.tso_len};
      for (uint32_t k = 0; k < 7; k++) m.Set(k, Napi::Number::New(env_, values[k]));
      meta_.Set(i, m);
      return !env_.IsExceptionPending();
    }
    const size_t hdr_len = static_cast<size_t>(p.offset & 0x7f) * 2 + static_cast<size_t>((p.offset >> 7) & 0x7f) * 4 +
                           static_cast<size_t>((p.offset >> 14) & 0xf) * 4;
    if (p.tso) {
      scratch_.resize(p.total);
      size_t at = 0;
      for (const Part& part : p.parts) {
        std::memcpy(scratch_.data() + at, part.data, part.length);
        at += part.length;
      }
      iavf::Layers layers;
      if (!iavf::ParseLayers(scratch_.data(), p.total, &layers) ||
          !iavf::TsoValid(scratch_.data(), p.total, layers, hdr_len, p.mss)) {
        p.counts[kBadTso]++;
        return true;
      }
      const size_t n = iavf::TsoSegments(p.total, hdr_len, p.mss);
      for (size_t i = 0; i < n; i++) {
        const size_t len = iavf::TsoSegmentLength(p.total, hdr_len, p.mss, i);
        Napi::Buffer<uint8_t> seg = Napi::Buffer<uint8_t>::New(env_, len);
        if (env_.IsExceptionPending()) return false;
        iavf::BuildTsoSegment(scratch_.data(), p.total, layers, hdr_len, p.mss, i, seg.Data());
        Push(seg, len);
      }
      return !env_.IsExceptionPending();
    }
    Napi::Buffer<uint8_t> frame = Gather(p);
    if (env_.IsExceptionPending()) return false;
    iavf::Layers layers;
    if (iavf::ParseLayers(frame.Data(), p.total, &layers)) {
      if ((p.cmd & kCmdIiptMask) == kCmdIiptIpv4Csum) iavf::FixIpv4Checksum(frame.Data(), p.total, layers);
      if (p.cmd & kCmdL4tMask) iavf::FixL4Checksum(frame.Data(), p.total, layers);
    }
    Push(frame, p.total);
    return !env_.IsExceptionPending();
  }

  Napi::Array frames() const { return frames_; }
  // Frames and bytes handed out so far (TSO segments count one each).
  uint64_t count() const { return count_; }
  uint64_t bytes() const { return bytes_; }
  Napi::Value meta() const { return offload_ ? env_.Undefined() : Napi::Value(meta_); }

 private:
  Napi::Buffer<uint8_t> Gather(const Packet& p) {
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env_, p.total);
    if (env_.IsExceptionPending()) return out;
    size_t at = 0;
    for (const Part& part : p.parts) {
      std::memcpy(out.Data() + at, part.data, part.length);
      at += part.length;
    }
    return out;
  }

  void Push(Napi::Buffer<uint8_t> frame, size_t length) {
    bytes_ += length;
    frames_.Set(count_++, frame);
  }

  Napi::Env env_;
  bool offload_;
  uint64_t bytes_ = 0;
  uint32_t count_ = 0;
  Napi::Array frames_;
  Napi::Array meta_;
  std::vector<uint8_t> scratch_;
};

Napi::Object TxResult(Napi::Env env, uint32_t head, uint32_t stop, const uint32_t* counts, const TxOutput* out) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("head", Napi::Number::New(env, head));
  r.Set("stop", Napi::Number::New(env, stop));
  Napi::Array c = Napi::Array::New(env, kCountSize);
  for (uint32_t i = 0; i < kCountSize; i++) c.Set(i, Napi::Number::New(env, counts[i]));
  r.Set("counts", c);
  r.Set("frames", out ? Napi::Value(out->frames()) : Napi::Value(Napi::Array::New(env)));
  r.Set("meta", out ? out->meta() : env.Undefined());
  return r;
}

}  // namespace

// txRing(ring: bigint, ringLen, head, tail, flags, maxFrames, maxBytes): walks the TX ring from head
// to tail, packet by packet (context descriptors, then data descriptors up to EOP), gathering each
// packet's buffers, and writes DTYPE 0xF into qword1 of every descriptor with RS of each packet it
// finished, sent or dropped. A pass starts no packet once it has produced maxFrames frames or maxBytes
// bytes (one packet adds at most 256 KiB, as 4096 TSO segments): one doorbell cannot hold the thread
// for long, whatever the ring holds. Returns { head, stop, counts, frames, meta }.
Napi::Value GuestMemoryTable::TxRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring;
  uint32_t len, head, tail, flags, max_frames, max_bytes;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &head) ||
      !ArgU32(info, 3, UINT32_MAX, &tail) || !ArgU32(info, 4, kTxOffload, &flags) ||
      !ArgU32(info, 5, UINT32_MAX, &max_frames) || !ArgU32(info, 6, UINT32_MAX, &max_bytes)) {
    return env.Undefined();
  }
  if (max_frames == 0 || max_bytes == 0) return ThrowTypeError(env, "maxFrames and maxBytes must be at least 1");
  uint32_t totals[kCountSize] = {};
  if (len == 0 || head >= len || tail >= len) return TxResult(env, head, kTxBadIndex, totals, nullptr);
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * kTxDescSize, true, &base) != Hit::kOk) {
    return TxResult(env, head, kTxRing, totals, nullptr);
  }
  TxOutput out(env, (flags & kTxOffload) != 0);
  Packet p;
  uint32_t stop = kTxCaughtUp;
  uint32_t pos = head;
  while (pos != tail && stop == kTxCaughtUp) {
    if (out.count() >= max_frames || out.bytes() >= max_bytes) {
      stop = kTxBudget;
      break;
    }
    const uint32_t start = pos;
    p.Reset();
    bool ended = false;
    while (pos != tail) {
      uint8_t* d = base + static_cast<size_t>(pos) * kTxDescSize;
      const uint64_t qw0 = Load64(d);
      const uint64_t qw1 = Load64(d + 8);
      pos = pos + 1 == len ? 0 : pos + 1;
      const uint64_t dtype = qw1 & 0xf;
      if (dtype == kDtypeContext) {
        const uint32_t cmd = static_cast<uint32_t>((qw1 >> 4) & 0xffff);
        p.tso = (cmd & kCtxCmdTso) != 0;
        p.tso_len = static_cast<uint32_t>((qw1 >> 30) & 0x3ffff);
        p.mss = static_cast<uint32_t>((qw1 >> 50) & 0x3fff);
        continue;
      }
      if (dtype != kDtypeData) continue;  // nothing for the device (e.g. already done)
      p.buffers++;
      const uint32_t cmd = static_cast<uint32_t>((qw1 >> 4) & 0x3ff);
      const uint32_t size = static_cast<uint32_t>((qw1 >> 34) & 0x3fff);
      if (cmd & kCmdRs) p.rs.push_back({d + 8, qw1});
      // A packet counts one error, for its first bad buffer; the rest of it is skipped up to its EOP.
      if (p.bad) {
        // already dropping
      } else if (size == 0) {
        p.counts[kBadLength]++;
        p.bad = true;
      } else {
        uint8_t* data = nullptr;
        switch (Find(qw0, size, false, &data)) {
          case Hit::kOk:
            p.parts.push_back({data, size});
            p.total += size;
            break;
          case Hit::kIndirect:
            stop = kTxIndirect;
            break;
          case Hit::kMiss:
          case Hit::kDenied:
            p.counts[kBadAddress]++;
            p.bad = true;
            break;
        }
        if (stop != kTxCaughtUp) break;
      }
      if (p.buffers > (p.tso ? kMaxTsoBuffers : kMaxTxBuffers)) {
        // A packet that never ends: dropped here, and the next descriptor starts a new one.
        if (!p.bad) p.counts[kNoEop]++;
        p.bad = true;
        ended = true;
        break;
      }
      if (cmd & kCmdEop) {
        p.cmd = cmd;
        p.offset = static_cast<uint32_t>((qw1 >> 16) & 0x3ffff);
        ended = true;
        break;
      }
    }
    if (stop != kTxCaughtUp || !ended) {
      // Nothing of this packet happened: it is read again from its first descriptor next time.
      if (stop == kTxCaughtUp) stop = kTxIncomplete;
      pos = start;
      break;
    }
    if (!p.bad && !out.Emit(p)) return env.Undefined();
    for (const RsDesc& rs : p.rs) {
      StoreRelease64(rs.at, (rs.qw1 & ~0xfull) | kDtypeDone);
      p.counts[kCompleted]++;
    }
    for (uint32_t i = 0; i < kCountSize; i++) totals[i] += p.counts[i];
    head = pos;
  }
  return TxResult(env, head, stop, totals, &out);
}

// rxRing(ring: bigint, ringLen, head, tail, bufferSize, maxFrame, frame: Uint8Array, hash, flags):
// writes one frame into the RX ring from head (the device owns [head, tail)), split over
// ceil(length / bufferSize) descriptors, each written back in the legacy format: qwords 2-3 zero (the
// 32-byte format only), qword0 the RSS hash (hash >= 0: high dword, FLTSTAT 3 in qword1), then qword1
// (DD, EOF on the last, LENGTH_PBUF) with a release store. Returns status * 65536 + new head.
// flags: bit 0 16-byte descriptors.
Napi::Value GuestMemoryTable::RxRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring;
  uint32_t len, head, tail, buffer_size, max_frame, flags;
  int64_t hash;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &head) ||
      !ArgU32(info, 3, UINT32_MAX, &tail) || !ArgU32(info, 4, UINT32_MAX, &buffer_size) ||
      !ArgU32(info, 5, UINT32_MAX, &max_frame)) {
    return env.Undefined();
  }
  if (!info[6].IsTypedArray()) return ThrowTypeError(env, "expected the frame as a Uint8Array");
  Napi::TypedArray view = info[6].As<Napi::TypedArray>();
  if (!ArgInt(info, 7, -1, UINT32_MAX, &hash) || !ArgU32(info, 8, kRx16Byte, &flags)) {
    return env.Undefined();
  }
  const uint32_t desc_size = (flags & kRx16Byte) != 0 ? kRxDescSize16 : kRxDescSize;
  const uint8_t* frame = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  const size_t length = view.ByteLength();
  auto result = [&](uint32_t status, uint32_t h) { return Napi::Number::New(env, status * 65536.0 + h); };

  if (len == 0 || tail >= len || head >= len) return result(kRxBadIndex, head);
  if (buffer_size == 0 || length == 0 || length > max_frame) return result(kRxTooBig, head);
  const size_t chunks = (length + buffer_size - 1) / buffer_size;
  if (chunks > kMaxRxChunks) return result(kRxTooBig, head);
  const uint32_t free = (tail + len - head) % len;
  if (free < chunks) return result(kRxNoBuffers, head);
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * desc_size, true, &base) != Hit::kOk) return result(kRxRing, head);

  uint8_t* desc[kMaxRxChunks];
  uint8_t* dest[kMaxRxChunks];
  size_t bad = chunks;  // index of the first bad buffer, chunks if none
  for (size_t i = 0; i < chunks; i++) {
    desc[i] = base + static_cast<size_t>((head + i) % len) * desc_size;
    const uint64_t pkt = Load64(desc[i]);
    const size_t part = i + 1 < chunks ? buffer_size : length - i * buffer_size;
    switch (Find(pkt, part, true, &dest[i])) {
      case Hit::kOk:
        continue;
      case Hit::kIndirect:
        return result(kRxIndirect, head);
      case Hit::kMiss:
      case Hit::kDenied:
        break;
    }
    bad = i;
    break;
  }
  // The buffers before a bad one get their part of the frame as usual; the bad one goes back to the
  // driver as a dropped packet (qword1 DD|EOF|RXE, nothing else written), so iavf_clean_rx_irq frees
  // what it gathered and the ring moves on instead of waiting on it.
  const uint64_t qw0 = hash >= 0 ? static_cast<uint64_t>(hash) << 32 : 0;
  const size_t good = bad < chunks ? bad : chunks;
  for (size_t i = 0; i < good; i++) {
    const size_t part = i + 1 < chunks ? buffer_size : length - i * buffer_size;
    std::memcpy(dest[i], frame + i * buffer_size, part);
  }
  for (size_t i = 0; i < good; i++) {
    const size_t part = i + 1 < chunks ? buffer_size : length - i * buffer_size;
    if (desc_size == kRxDescSize) {
      Store64(desc[i] + 16, 0);
      Store64(desc[i] + 24, 0);
    }
    Store64(desc[i], qw0);
    uint64_t qw1 = kRxDd | (static_cast<uint64_t>(part) << kRxLengthShift);
    if (i + 1 == chunks) qw1 |= kRxEof;
    if (hash >= 0) qw1 |= kRxFltstatRss;
    StoreRelease64(desc[i] + 8, qw1);
  }
  if (bad < chunks) {
    StoreRelease64(desc[bad] + 8, kRxDd | kRxEof | kRxErrRxe);
    return result(kRxBadBuffer, static_cast<uint32_t>((head + bad + 1) % len));
  }
  return result(kRxOk, static_cast<uint32_t>((head + chunks) % len));
}

// The guest driver's side, for benchmarks and tests: guestPostTx(ring, ringLen, next, count, buffer,
// length, cmd) writes `count` one-buffer data descriptors (all pointing at the same buffer) from
// `next`, as iavf_tx_map does; returns the new next_to_use. The caller bumps the tail.
Napi::Value GuestMemoryTable::GuestPostTx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring, buffer;
  uint32_t len, next, count, length, cmd;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &next) ||
      !ArgU32(info, 3, UINT32_MAX, &count) || !ArgBigUint64(info, 4, &buffer) || !ArgU32(info, 5, 0x3fff, &length) ||
      !ArgU32(info, 6, 0x3ff, &cmd)) {
    return env.Undefined();
  }
  if (len == 0 || next >= len || count >= len) return ThrowTypeError(env, "next and count must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * kTxDescSize, true, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestPostTx");
  }
  const uint64_t qw1 = kDtypeData | (static_cast<uint64_t>(cmd) << 4) | (static_cast<uint64_t>(length) << 34);
  for (uint32_t i = 0; i < count; i++) {
    uint8_t* d = base + static_cast<size_t>(next) * kTxDescSize;
    Store64(d, buffer);
    StoreRelease64(d + 8, qw1);
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, next);
}

// guestPostRx(ring, ringLen, next, count, buffers, bufferSize, descSize): pkt_addr of `count`
// descriptors (16 or 32 bytes each) from `next` (descriptor i gets buffers + i * bufferSize) and qword1
// cleared, as iavf_alloc_rx_buffers; returns the new next_to_use. The caller bumps the tail.
Napi::Value GuestMemoryTable::GuestPostRx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring, buffers;
  uint32_t len, next, count, buffer_size, desc_size;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &next) ||
      !ArgU32(info, 3, UINT32_MAX, &count) || !ArgBigUint64(info, 4, &buffers) ||
      !ArgU32(info, 5, UINT32_MAX, &buffer_size) || !ArgU32(info, 6, kRxDescSize, &desc_size)) {
    return env.Undefined();
  }
  if (desc_size != kRxDescSize && desc_size != kRxDescSize16) return ThrowTypeError(env, "descSize must be 16 or 32");
  if (len == 0 || next >= len || count >= len) return ThrowTypeError(env, "next and count must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * desc_size, true, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestPostRx");
  }
  for (uint32_t i = 0; i < count; i++) {
    uint8_t* d = base + static_cast<size_t>(next) * desc_size;
    Store64(d, buffers + static_cast<uint64_t>(next) * buffer_size);
    StoreRelease64(d + 8, 0);
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, next);
}

}  // namespace emu
