// The iavf data-path rings for JavaScript, on a GuestMemoryTable (see guest_memory.h): Node-API glue
// over the ring rules in iavf_ring_core.h, which the data plane's workers share.
//
//   table.txRing(ring: bigint, ringLen, head, tail, flags, maxFrames, maxBytes) -> TxResult
//   table.rxRing(ring: bigint, ringLen, head, tail, bufferSize, maxFrame, frame, hash, flags) -> number
//   table.guestPostTx(ring: bigint, ringLen, next, count, buffer: bigint, length, cmd) -> next
//   table.guestPostRx(ring: bigint, ringLen, next, count, buffers: bigint, bufferSize, descSize) -> next
//   table.guestReapTx(ring: bigint, ringLen, next, max) -> count
//   table.guestReapRx(ring: bigint, ringLen, next, max, descSize) -> count
//
// Policy (counters, logs, interrupts, filters, RSS) stays with the caller: these functions report what
// happened.
#include <cstdint>
#include <cstring>

#include "args.h"
#include "errors.h"
#include "guest_memory.h"
#include "iavf_ring_core.h"
#include "module.h"

namespace emu {
namespace {

using namespace iavf;

constexpr uint64_t kDtypeData = 0x0;

// Flags.
constexpr uint32_t kTxOffload = 1;  // txRing: do checksums and TSO here (else return packets and their metadata)
constexpr uint32_t kRx16Byte = 1;   // rxRing: the ring holds 16-byte descriptors (RXDID 0)

bool ArgU32(const Napi::CallbackInfo& info, size_t i, uint32_t max, uint32_t* out) {
  int64_t v;
  if (!ArgInt(info, i, 0, max, &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// Packets become fresh Buffers the caller may keep: after the offloads, or as gathered with their
// metadata.
class TxOutput : public TxSink {
 public:
  TxOutput(Napi::Env env, bool offload) : env_(env), offload_(offload), frames_(Napi::Array::New(env)) {
    if (!offload) meta_ = Napi::Array::New(env);
  }

  bool Packet(const TxPacket& p, uint32_t* counts) override {
    if (!offload_) {
      uint32_t i = static_cast<uint32_t>(frames);
      Napi::Buffer<uint8_t> frame = Napi::Buffer<uint8_t>::New(env_, p.total);
      if (env_.IsExceptionPending()) return false;
      p.Gather(frame.Data());
      Push(frame, p.total);
      // [cmd, MACLEN, IPLEN, L4LEN (bytes), tso, mss, tsoLen]
      Napi::Array m = Napi::Array::New(env_, 7);
      const uint32_t values[7] = {p.cmd, p.MacLen(), p.IpLen(), p.L4Len(), p.tso ? 1u : 0u, p.mss, p.tso_len};
      for (uint32_t k = 0; k < 7; k++) m.Set(k, Napi::Number::New(env_, values[k]));
      meta_.Set(i, m);
      return !env_.IsExceptionPending();
    }
    Napi::Buffer<uint8_t> pending;
    return builder_.Build(
        p, counts,
        [&](size_t length) -> uint8_t* {
          pending = Napi::Buffer<uint8_t>::New(env_, length);
          return env_.IsExceptionPending() ? nullptr : pending.Data();
        },
        [&](uint8_t*, size_t length) {
          Push(pending, length);
          return !env_.IsExceptionPending();
        });
  }

  Napi::Array list() const { return frames_; }
  Napi::Value meta() const { return offload_ ? env_.Undefined() : Napi::Value(meta_); }

 private:
  void Push(Napi::Buffer<uint8_t> frame, size_t length) {
    bytes += length;
    frames_.Set(static_cast<uint32_t>(frames++), frame);
  }

  Napi::Env env_;
  bool offload_;
  Napi::Array frames_;
  Napi::Array meta_;
  FrameBuilder builder_;
};

Napi::Object TxResult(Napi::Env env, const TxPass& pass, const TxOutput* out) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("head", Napi::Number::New(env, pass.head));
  r.Set("stop", Napi::Number::New(env, pass.stop));
  Napi::Array c = Napi::Array::New(env, kCountSize);
  for (uint32_t i = 0; i < kCountSize; i++) c.Set(i, Napi::Number::New(env, pass.counts[i]));
  r.Set("counts", c);
  r.Set("frames", out ? Napi::Value(out->list()) : Napi::Value(Napi::Array::New(env)));
  r.Set("meta", out ? out->meta() : env.Undefined());
  return r;
}

}  // namespace

// txRing(ring: bigint, ringLen, head, tail, flags, maxFrames, maxBytes): TxWalk into fresh Buffers
// (iavf_ring_core.h). Returns { head, stop, counts, frames, meta }.
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
  Prune();
  TxOutput out(env, (flags & kTxOffload) != 0);
  const TxPass pass = TxWalk(*this, ring, len, head, tail, max_frames, max_bytes, out);
  if (pass.stop == kTxAborted) return env.Undefined();  // the exception is pending
  return TxResult(env, pass, &out);
}

// rxRing(ring: bigint, ringLen, head, tail, bufferSize, maxFrame, frame: Uint8Array, hash, flags):
// RxWrite of one frame (iavf_ring_core.h); hash < 0 for none; flags bit 0: 16-byte descriptors.
// Returns status * 65536 + new head.
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
  const uint8_t* frame = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
  Prune();
  const RxQueue q{ring, len, buffer_size, max_frame, (flags & kRx16Byte) != 0 ? kRxDescSize16 : kRxDescSize};
  const RxResult r = RxWrite(*this, q, head, tail, frame, view.ByteLength(), hash);
  return Napi::Number::New(env, r.status * 65536.0 + r.head);
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

// guestReapTx(ring, ringLen, next, max): how many descriptors from `next` on (at most max) the device
// wrote back done (DTYPE 0xF), as iavf_clean_tx_irq counts them; the guest's next_to_clean moves by it.
Napi::Value GuestMemoryTable::GuestReapTx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring;
  uint32_t len, next, max;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &next) ||
      !ArgU32(info, 3, UINT32_MAX, &max)) {
    return env.Undefined();
  }
  if (len == 0 || next >= len || max >= len) return ThrowTypeError(env, "next and max must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * kTxDescSize, true, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestReapTx");
  }
  uint32_t n = 0;
  while (n < max && (Load64(base + static_cast<size_t>(next) * kTxDescSize + 8) & 0xf) == 0xf) {
    n++;
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, n);
}

// guestReapRx(ring, ringLen, next, max, descSize): how many descriptors from `next` on (at most max) the
// device wrote back (DD), clearing their qword1 as the guest's refill would; next_to_clean moves by it.
Napi::Value GuestMemoryTable::GuestReapRx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t ring;
  uint32_t len, next, max, desc_size;
  if (!ArgBigUint64(info, 0, &ring) || !ArgU32(info, 1, kMaxRingLen, &len) || !ArgU32(info, 2, UINT32_MAX, &next) ||
      !ArgU32(info, 3, UINT32_MAX, &max) || !ArgU32(info, 4, kRxDescSize, &desc_size)) {
    return env.Undefined();
  }
  if (desc_size != kRxDescSize && desc_size != kRxDescSize16) return ThrowTypeError(env, "descSize must be 16 or 32");
  if (len == 0 || next >= len || max >= len) return ThrowTypeError(env, "next and max must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * desc_size, true, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestReapRx");
  }
  uint32_t n = 0;
  while (n < max) {
    uint8_t* qw1 = base + static_cast<size_t>(next) * desc_size + 8;
    if ((Load64(qw1) & 1) == 0) break;
    Store64(qw1, 0);
    n++;
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, n);
}

}  // namespace emu
