// The iavf data-path rings for JavaScript, on a GuestMemoryTable (see guest_memory.h): Node-API glue
// over the ring rules in iavf_ring_core.h, which the data plane's workers share. Each method takes one
// options object and returns named fields (lib/iavf-rings.ts): txRing and rxRing (the device's side,
// through the table or, for fd-less RAM, a StagedMemory over it), guestPostTx, guestPostRx,
// guestReapTx and guestReapRx (the guest driver's side, for tests and benchmarks), and
// iavfGuestForward (a whole guest pair, for benchmarks).
//
// Policy (counters, logs, interrupts, filters, RSS) stays with the caller: these functions report what
// happened.
#include <cstdint>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/args.h"
#include "base/errors.h"
#include "iavf/iavf_ring_core.h"
#include "memory/guest_memory.h"
#include "memory/staged_memory_js.h"
#include "module.h"

namespace emu {
namespace {

using namespace iavf;

// Every call here takes one options object (lib/iavf-rings.ts builds it) and names what it returns.
bool Options(const Napi::CallbackInfo& info, Napi::Object* out) {
  if (!info[0].IsObject()) return false;
  *out = info[0].As<Napi::Object>();
  return true;
}

// The ring of an options object: `ring` (its IOVA) and `ringLen` (descriptors).
bool RingFields(Napi::Object o, uint64_t* ring, uint32_t* len) {
  return FieldBigUint64(o, "ring", ring) && FieldU32(o, "ringLen", kMaxRingLen, len);
}

// An optional field: `absent` when undefined, else an integer in [min, max].
bool OptionalInt(Napi::Object o, const char* key, int64_t min, int64_t max, int64_t absent, int64_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) {
    *out = absent;
    return true;
  }
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max)) || std::floor(d) != d) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

// The optional `stage` of an options object: a StagedMemory the walk goes through (over fd-less RAM),
// begun over `table`; nullptr and true when absent, false when it is not a StagedMemory.
bool Stage(Napi::Object o, const GuestMemoryTable* table, StagedMemory** out) {
  Napi::Value v = o.Get("stage");
  *out = nullptr;
  if (v.IsUndefined()) return true;
  *out = StagedMemory::FromValue(v);
  if (*out == nullptr) return false;
  (*out)->space().Begin(table);
  return true;
}

bool DescSize(Napi::Object o, uint32_t* out) {
  return FieldU32(o, "descSize", kRxDescSize, out) && (*out == kRxDescSize || *out == kRxDescSize16);
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
      Napi::Object m = Napi::Object::New(env_);
      m.Set("cmd", p.cmd);
      m.Set("macLen", p.MacLen());
      m.Set("ipLen", p.IpLen());
      m.Set("l4Len", p.L4Len());
      m.Set("tso", p.tso);
      m.Set("mss", p.mss);
      m.Set("tsoLen", p.tso_len);
      m.Set("l2tag1", p.l2tag1);
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
  r.Set("stop", kTxStopNames[pass.stop]);
  Napi::Object c = Napi::Object::New(env);
  for (uint32_t i = 0; i < kCountSize; i++) c.Set(kTxCountNames[i], pass.counts[i]);
  r.Set("counts", c);
  r.Set("frames", out ? Napi::Value(out->list()) : Napi::Value(Napi::Array::New(env)));
  r.Set("meta", out ? out->meta() : env.Undefined());
  return r;
}

}  // namespace

// txRing({ ring: bigint, ringLen, head, tail, offload, maxFrames, maxBytes, stage? }): TxWalk into
// fresh Buffers (iavf_ring_core.h), with the offloads or as gathered with each packet's metadata.
// Returns { head, stop, counts, frames, meta }, and with a stage its need and writes (StagedMemory).
Napi::Value GuestMemoryTable::TxRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring;
  uint32_t len, head, tail, max_frames, max_bytes;
  bool offload;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "head", UINT32_MAX, &head) ||
      !FieldU32(o, "tail", UINT32_MAX, &tail) || !FieldBool(o, "offload", &offload) ||
      !FieldU32(o, "maxFrames", UINT32_MAX, &max_frames) || !FieldU32(o, "maxBytes", UINT32_MAX, &max_bytes)) {
    return ThrowTypeError(env, "expected { ring, ringLen, head, tail, offload, maxFrames, maxBytes }");
  }
  if (max_frames == 0 || max_bytes == 0) return ThrowTypeError(env, "maxFrames and maxBytes must be at least 1");
  StagedMemory* stage;
  if (!Stage(o, this, &stage)) return ThrowTypeError(env, "stage must be a StagedMemory");
  Prune();
  TxOutput out(env, offload);
  const DmaSpace& mem = stage ? static_cast<const DmaSpace&>(stage->space()) : *this;
  const TxPass pass = TxWalk(mem, ring, len, head, tail, max_frames, max_bytes, out);
  if (pass.stop == kTxAborted) return env.Undefined();  // the exception is pending
  Napi::Object r = TxResult(env, pass, &out);
  if (stage) stage->Report(env, r, pass.stop == kTxIndirect);
  return r;
}

// rxRing({ ring: bigint, ringLen, head, tail, bufferSize, maxFrame, descSize, frame: Uint8Array, hash?,
// l2tag1?, stage? }): RxWrite of one frame (iavf_ring_core.h); hash: the RSS hash to write back, l2tag1:
// a stripped VLAN tag (absent: none). Returns { status, head }, and with a stage its need and writes.
Napi::Value GuestMemoryTable::RxRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring;
  uint32_t len, head, tail, buffer_size, max_frame, desc_size;
  int64_t hash, l2tag1;
  const uint8_t* frame = nullptr;
  size_t length = 0;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "head", UINT32_MAX, &head) ||
      !FieldU32(o, "tail", UINT32_MAX, &tail) || !FieldU32(o, "bufferSize", UINT32_MAX, &buffer_size) ||
      !FieldU32(o, "maxFrame", UINT32_MAX, &max_frame) || !DescSize(o, &desc_size) ||
      !TypedBytes(o.Get("frame"), &frame, &length) || !OptionalInt(o, "hash", 0, UINT32_MAX, -1, &hash) ||
      !OptionalInt(o, "l2tag1", 0, 0xffff, -1, &l2tag1)) {
    return ThrowTypeError(
        env, "expected { ring, ringLen, head, tail, bufferSize, maxFrame, descSize: 16 | 32, frame, hash?, l2tag1? }");
  }
  StagedMemory* stage;
  if (!Stage(o, this, &stage)) return ThrowTypeError(env, "stage must be a StagedMemory");
  Prune();
  const RxQueue q{ring, len, buffer_size, max_frame, desc_size};
  const DmaSpace& mem = stage ? static_cast<const DmaSpace&>(stage->space()) : *this;
  const RxResult r = RxWrite(mem, q, head, tail, frame, length, hash, static_cast<int32_t>(l2tag1));
  Napi::Object result = Napi::Object::New(env);
  result.Set("status", kRxStatusNames[r.status]);
  result.Set("head", r.head);
  if (stage) stage->Report(env, result, r.status == kRxIndirect);
  return result;
}

// The guest driver's side, for benchmarks and tests: guestPostTx({ ring, ringLen, next, count, buffer,
// length, cmd }) writes `count` one-buffer data descriptors (all pointing at the same buffer) from
// `next`, as iavf_tx_map does; returns the new next_to_use. The caller bumps the tail.
Napi::Value GuestMemoryTable::GuestPostTx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring, buffer;
  uint32_t len, next, count, length, cmd;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "next", UINT32_MAX, &next) ||
      !FieldU32(o, "count", UINT32_MAX, &count) || !FieldBigUint64(o, "buffer", &buffer) ||
      !FieldU32(o, "length", 0x3fff, &length) || !FieldU32(o, "cmd", 0x3ff, &cmd)) {
    return ThrowTypeError(env, "expected { ring, ringLen, next, count, buffer, length (< 16 KiB), cmd }");
  }
  if (len == 0 || next >= len || count >= len) return ThrowTypeError(env, "next and count must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * kTxDescSize, Access::kReadWrite, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestPostTx");
  }
  const uint64_t qw1 = TxDataQw1(cmd, length);
  for (uint32_t i = 0; i < count; i++) {
    uint8_t* d = base + static_cast<size_t>(next) * kTxDescSize;
    Store64(d, buffer);
    StoreRelease64(d + 8, qw1);
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, next);
}

// guestPostRx({ ring, ringLen, next, count, buffers, bufferSize, descSize }): pkt_addr of `count`
// descriptors (16 or 32 bytes each) from `next` (descriptor i gets buffers + i * bufferSize) and qword1
// cleared, as iavf_alloc_rx_buffers; returns the new next_to_use. The caller bumps the tail.
Napi::Value GuestMemoryTable::GuestPostRx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring, buffers;
  uint32_t len, next, count, buffer_size, desc_size;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "next", UINT32_MAX, &next) ||
      !FieldU32(o, "count", UINT32_MAX, &count) || !FieldBigUint64(o, "buffers", &buffers) ||
      !FieldU32(o, "bufferSize", UINT32_MAX, &buffer_size) || !DescSize(o, &desc_size)) {
    return ThrowTypeError(env, "expected { ring, ringLen, next, count, buffers, bufferSize, descSize: 16 | 32 }");
  }
  if (len == 0 || next >= len || count >= len) return ThrowTypeError(env, "next and count must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * desc_size, Access::kReadWrite, &base) != Hit::kOk) {
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

// guestReapTx({ ring, ringLen, next, max }): how many descriptors from `next` on (at most max) the device
// wrote back done (DTYPE 0xF), as iavf_clean_tx_irq counts them; the guest's next_to_clean moves by it.
Napi::Value GuestMemoryTable::GuestReapTx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring;
  uint32_t len, next, max;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "next", UINT32_MAX, &next) ||
      !FieldU32(o, "max", UINT32_MAX, &max)) {
    return ThrowTypeError(env, "expected { ring, ringLen, next, max }");
  }
  if (len == 0 || next >= len || max >= len) return ThrowTypeError(env, "next and max must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * kTxDescSize, Access::kReadWrite, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestReapTx");
  }
  uint32_t n = 0;
  while (n < max && (Load64(base + static_cast<size_t>(next) * kTxDescSize + 8) & 0xf) == kDtypeDone) {
    n++;
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, n);
}

// guestReapRx({ ring, ringLen, next, max, descSize }): how many descriptors from `next` on (at most max) the
// device wrote back (DD), clearing their qword1 as the guest's refill would; next_to_clean moves by it.
Napi::Value GuestMemoryTable::GuestReapRx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o;
  uint64_t ring;
  uint32_t len, next, max, desc_size;
  if (!Options(info, &o) || !RingFields(o, &ring, &len) || !FieldU32(o, "next", UINT32_MAX, &next) ||
      !FieldU32(o, "max", UINT32_MAX, &max) || !DescSize(o, &desc_size)) {
    return ThrowTypeError(env, "expected { ring, ringLen, next, max, descSize: 16 | 32 }");
  }
  if (len == 0 || next >= len || max >= len) return ThrowTypeError(env, "next and max must be below ringLen");
  Prune();
  uint8_t* base = nullptr;
  if (Find(ring, static_cast<uint64_t>(len) * desc_size, Access::kReadWrite, &base) != Hit::kOk) {
    return ThrowErrno(env, EFAULT, "guestReapRx");
  }
  uint32_t n = 0;
  while (n < max) {
    uint8_t* qw1 = base + static_cast<size_t>(next) * desc_size + 8;
    if ((Load64(qw1) & kRxDd) == 0) break;
    Store64(qw1, 0);
    n++;
    next = next + 1 == len ? 0 : next + 1;
  }
  return Napi::Number::New(env, n);
}

namespace {

constexpr uint32_t kRsEvery = 32;  // DPDK iavf's tx_rs_thresh

// One guest of iavfGuestForward: where its rings are, and its driver's indexes.
struct GuestSide {
  uint8_t* tx = nullptr;
  uint8_t* rx = nullptr;
  uint32_t len = 0;
  uint64_t rx_buffers = 0;
  uint32_t buffer_size = 0;
  uint64_t frame = 0;
  uint32_t frame_length = 0;
  uint32_t* tx_tail = nullptr;
  uint32_t* rx_tail = nullptr;
  uint32_t tx_ntu = 0, tx_ntc = 0, in_flight = 0, rx_ntu = 0, rx_ntc = 0;
  uint64_t owed = 0;
};

uint32_t* TailWord(Napi::Value v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) return nullptr;
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  return a.ElementLength() < 1 ? nullptr : a.Data();
}

}  // namespace

// iavfGuestForward(sides, warmupMs, runMs) -> { frames, seconds }: the guest drivers' side of
// testpmd-like io forwarding, for benchmarks: for each side in turn, clean the RX ring (DD), give the
// buffers back and bump QRX_TAIL, clean the TX ring (DTYPE 0xF), and send as many frames as it received
// (one-buffer descriptors, EOP|ICRC, RS on every 32nd as DPDK's iavf PMD sets it) and bump QTX_TAIL.
// ringLen must be a multiple of 32, txNtu and txNtc too. The tails are words of the BAR0 page the
// caller mapped. sides[i]: { table, tx, rx, ringLen, rxBuffers, bufferSize, frame, frameLength, txTail,
// rxTail, txNtu, txNtc, inFlight, rxNtu, rxNtc, owed }. Counts frames received after the warm-up.
Napi::Value GuestForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || !info[1].IsNumber() || !info[2].IsNumber()) {
    return ThrowTypeError(env, "expected (sides, warmupMs, runMs)");
  }
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<GuestSide> sides(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) return ThrowTypeError(env, "each side is an object");
    Napi::Object o = v.As<Napi::Object>();
    GuestMemoryTable* table = GuestMemoryTable::FromValue(o.Get("table"));
    if (table == nullptr) return ThrowTypeError(env, "side.table must be a GuestMemoryTable");
    GuestSide& s = sides[i];
    uint64_t tx, rx;
    uint32_t owed;
    if (!FieldBigUint64(o, "tx", &tx) || !FieldBigUint64(o, "rx", &rx) || !FieldU32(o, "ringLen", kMaxRingLen, &s.len) ||
        s.len == 0 || s.len % kRsEvery != 0 || !FieldBigUint64(o, "rxBuffers", &s.rx_buffers) ||
        !FieldU32(o, "bufferSize", UINT32_MAX, &s.buffer_size) || !FieldBigUint64(o, "frame", &s.frame) ||
        !FieldU32(o, "frameLength", 0x3fff, &s.frame_length) || s.frame_length == 0 ||
        !FieldU32(o, "txNtu", s.len - 1, &s.tx_ntu) || !FieldU32(o, "txNtc", s.len - 1, &s.tx_ntc) ||
        !FieldU32(o, "inFlight", s.len - 1, &s.in_flight) || !FieldU32(o, "rxNtu", s.len - 1, &s.rx_ntu) ||
        !FieldU32(o, "rxNtc", s.len - 1, &s.rx_ntc) || !FieldU32(o, "owed", UINT32_MAX, &owed)) {
      return ThrowTypeError(env, "bad side");
    }
    s.owed = owed;
    s.tx_tail = TailWord(o.Get("txTail"));
    s.rx_tail = TailWord(o.Get("rxTail"));
    if (s.tx_tail == nullptr || s.rx_tail == nullptr) return ThrowTypeError(env, "txTail and rxTail are Uint32Arrays");
    table->Prune();
    if (table->Find(tx, static_cast<uint64_t>(s.len) * kTxDescSize, Access::kReadWrite, &s.tx) != Hit::kOk ||
        table->Find(rx, static_cast<uint64_t>(s.len) * kRxDescSize, Access::kReadWrite, &s.rx) != Hit::kOk) {
      return ThrowErrno(env, EFAULT, "iavfGuestForward");
    }
  }
  const double warmup_ms = info[1].As<Napi::Number>().DoubleValue();
  const double run_ms = info[2].As<Napi::Number>().DoubleValue();
  const uint64_t t0 = uv_hrtime();
  const uint64_t counting_from = t0 + static_cast<uint64_t>(warmup_ms * 1e6);
  const uint64_t end = counting_from + static_cast<uint64_t>(run_ms * 1e6);

  uint64_t frames = 0;
  uint64_t started = 0;
  for (uint64_t turn = 0;; turn++) {
    if ((turn & 1023) == 0) {
      const uint64_t now = uv_hrtime();
      if (started == 0 && now >= counting_from) {
        started = now;
        frames = 0;
      }
      if (now >= end) break;
    }
    bool idle = true;
    for (GuestSide& s : sides) {
      uint32_t got = 0;
      while (got < s.len - 1) {
        uint8_t* qw1 = s.rx + static_cast<size_t>(s.rx_ntc) * kRxDescSize + 8;
        if ((Load64(qw1) & kRxDd) == 0) break;
        got++;
        s.rx_ntc = s.rx_ntc + 1 == s.len ? 0 : s.rx_ntc + 1;
      }
      if (got > 0) {
        for (uint32_t i = 0; i < got; i++) {
          uint8_t* d = s.rx + static_cast<size_t>(s.rx_ntu) * kRxDescSize;
          Store64(d, s.rx_buffers + static_cast<uint64_t>(s.rx_ntu) * s.buffer_size);
          StoreRelease64(d + 8, 0);
          s.rx_ntu = s.rx_ntu + 1 == s.len ? 0 : s.rx_ntu + 1;
        }
        __atomic_store_n(s.rx_tail, s.rx_ntu, __ATOMIC_RELEASE);
        s.owed += got;
        frames += got;
        idle = false;
      }
      // As DPDK's iavf PMD: RS on every 32nd descriptor only, and TX cleaned 32 at a time once that
      // one is done, so the device writes back (and this core reads) one descriptor in 32.
      while (s.in_flight >= kRsEvery &&
             (Load64(s.tx + static_cast<size_t>((s.tx_ntc + kRsEvery - 1) % s.len) * kTxDescSize + 8) & 0xf) ==
                 kDtypeDone) {
        s.in_flight -= kRsEvery;
        s.tx_ntc = (s.tx_ntc + kRsEvery) % s.len;
      }
      uint64_t n = std::min<uint64_t>(s.owed, s.len - 1 - s.in_flight);
      if (n > 0) {
        const uint64_t qw1 = TxDataQw1(kCmdEop | kCmdIcrc, s.frame_length);
        const uint64_t qw1_rs = TxDataQw1(kCmdEop | kCmdIcrc | kCmdRs, s.frame_length);
        for (uint64_t i = 0; i < n; i++) {
          uint8_t* d = s.tx + static_cast<size_t>(s.tx_ntu) * kTxDescSize;
          Store64(d, s.frame);
          StoreRelease64(d + 8, (s.tx_ntu + 1) % kRsEvery == 0 ? qw1_rs : qw1);
          s.tx_ntu = s.tx_ntu + 1 == s.len ? 0 : s.tx_ntu + 1;
        }
        s.in_flight += static_cast<uint32_t>(n);
        s.owed -= n;
        __atomic_store_n(s.tx_tail, s.tx_ntu, __ATOMIC_RELEASE);
      }
    }
    // Nothing came: wait a moment before looking again, rather than pulling the descriptor the device
    // is writing into this core's cache at every turn.
    if (idle) {
      for (int i = 0; i < 64; i++) __builtin_ia32_pause();
    }
  }
  const double seconds = started == 0 ? 0 : static_cast<double>(uv_hrtime() - started) / 1e9;
  Napi::Object r = Napi::Object::New(env);
  r.Set("frames", Napi::Number::New(env, static_cast<double>(frames)));
  r.Set("seconds", Napi::Number::New(env, seconds));
  return r;
}

// iavfTxFrames(packet, { cmd, macLen, ipLen, l4Len, tso, mss, tsoLen, l2tag1 }): the frames one gathered
// packet becomes (checksums, TSO segments, the VLAN tag), through the TX walk's own sink: { frames, badTso }.
Napi::Value TxFrames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data;
  size_t length;
  if (!TypedBytes(info[0], &data, &length)) return ThrowTypeError(env, "expected the packet as a Uint8Array");
  if (length > kMaxTso) return ThrowTypeError(env, "packet longer than a TSO may be (256 KiB)");
  if (!info[1].IsObject()) return ThrowTypeError(env, "expected the descriptor fields");
  Napi::Object d = info[1].As<Napi::Object>();
  uint32_t cmd, mac_len, ip_len, l4_len, mss, tso_len, l2tag1;
  bool tso;
  if (!FieldU32(d, "cmd", 0x3ff, &cmd) || !FieldU32(d, "macLen", 0x7f * 2, &mac_len) ||
      !FieldU32(d, "ipLen", 0x7f * 4, &ip_len) || !FieldU32(d, "l4Len", 0xf * 4, &l4_len) ||
      !FieldBool(d, "tso", &tso) || !FieldU32(d, "mss", 0x3fff, &mss) || !FieldU32(d, "tsoLen", 0x3ffff, &tso_len) ||
      !FieldU32(d, "l2tag1", 0xffff, &l2tag1)) {
    return ThrowTypeError(env, "bad TX descriptor fields");
  }
  TxPacket p;
  p.parts[0] = {data, static_cast<uint32_t>(length)};
  p.nparts = 1;
  p.total = length;
  p.tso = tso;
  p.mss = mss;
  p.tso_len = tso_len;
  p.cmd = cmd;
  p.offset = (mac_len / 2) | ((ip_len / 4) << 7) | ((l4_len / 4) << 14);
  p.l2tag1 = static_cast<uint16_t>(l2tag1);
  uint32_t counts[kCountSize] = {};
  TxOutput out(env, true);
  if (!out.Packet(p, counts)) return env.Undefined();  // an exception is pending
  Napi::Object r = Napi::Object::New(env);
  r.Set("frames", out.list());
  r.Set("badTso", Napi::Boolean::New(env, counts[kBadTso] > 0));
  return r;
}

void InitTxFrames(Napi::Env env, Napi::Object exports) {
  exports.Set("iavfTxFrames", Napi::Function::New(env, TxFrames, "iavfTxFrames"));
}

void InitGuestDriver(Napi::Env env, Napi::Object exports) {
  exports.Set("iavfGuestForward", Napi::Function::New(env, GuestForward, "iavfGuestForward"));
}

}  // namespace emu
