#include "memory/guest_memory.h"

#include <cstdint>
#include <iterator>
#include <utility>

#include "base/args.h"
#include "base/errors.h"
#include "memory/mapping.h"
#include "memory/memory_lock.h"
#include "module.h"

namespace emu {
namespace {

Napi::Value ThrowRange(Napi::Env env, const char* message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// [iova, iova + size) does not wrap past 2^64 (size > 0).
inline bool NoWrap(uint64_t iova, uint64_t size) { return size - 1 <= UINT64_MAX - iova; }

// Whether [a, a + as) and [b, b + bs) overlap (both non-empty, neither wrapping).
inline bool Overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) { return a <= b + (bs - 1) && b <= a + (as - 1); }

Napi::Object RangeObject(Napi::Env env, uint64_t iova, uint64_t size) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("iova", Napi::BigInt::New(env, iova));
  o.Set("size", Napi::BigInt::New(env, size));
  return o;
}

}  // namespace

Napi::FunctionReference* GuestMemoryTable::constructor_ = nullptr;

GuestMemoryTable* GuestMemoryTable::FromValue(Napi::Value v) {
  if (constructor_ == nullptr || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor_->Value())) {
    return nullptr;
  }
  return Unwrap(v.As<Napi::Object>());
}

Napi::Function GuestMemoryTable::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "GuestMemoryTable",
                     {
                         InstanceMethod<&GuestMemoryTable::Add>("add"),
                         InstanceMethod<&GuestMemoryTable::AddMapping>("addMapping"),
                         InstanceMethod<&GuestMemoryTable::AddIndirect>("addIndirect"),
                         InstanceMethod<&GuestMemoryTable::Remove>("remove"),
                         InstanceMethod<&GuestMemoryTable::Clear>("clear"),
                         InstanceMethod<&GuestMemoryTable::List>("list"),
                         InstanceMethod<&GuestMemoryTable::Lookup>("lookup"),
                         InstanceMethod<&GuestMemoryTable::FindRange>("find"),
                         InstanceMethod<&GuestMemoryTable::Overlapping>("overlapping"),
                         InstanceMethod<&GuestMemoryTable::Within>("within"),
                         InstanceMethod<&GuestMemoryTable::SetEnabled>("setEnabled"),
                         InstanceAccessor<&GuestMemoryTable::GetEnabled>("enabled"),
                         InstanceAccessor<&GuestMemoryTable::GetCount>("count"),
                         InstanceMethod<&GuestMemoryTable::TxRing>("txRing"),
                         InstanceMethod<&GuestMemoryTable::RxRing>("rxRing"),
                         InstanceMethod<&GuestMemoryTable::GuestPostTx>("guestPostTx"),
                         InstanceMethod<&GuestMemoryTable::GuestPostRx>("guestPostRx"),
                         InstanceMethod<&GuestMemoryTable::GuestReapTx>("guestReapTx"),
                         InstanceMethod<&GuestMemoryTable::GuestReapRx>("guestReapRx"),
                     });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

GuestMemoryTable::GuestMemoryTable(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<GuestMemoryTable>(info), env_(info.Env()) {}

GuestMemoryTable::~GuestMemoryTable() {
  for (auto& [iova, r] : ranges_) {
    if (r.mapping != nullptr) Mapping::Release(env_, r.mapping);
  }
}

void GuestMemoryTable::Erase(Ranges::iterator it) {
  Mapping* mapping = it->second.mapping;
  if (!it->second.keep.IsEmpty()) buffer_ranges_--;
  {
    memory_lock::Exclusive quiesce;  // no worker is looking the range up, nor starts to
    ranges_.erase(it);
    generation_.fetch_add(1, std::memory_order_release);
  }
  // Only now may the mapping go (its last reference may be this one): no worker can reach it any more.
  if (mapping != nullptr) Mapping::Release(env_, mapping);
}

void GuestMemoryTable::Prune() {
  if (buffer_ranges_ == 0) return;
  for (auto it = ranges_.begin(); it != ranges_.end();) {
    auto next = std::next(it);
    if (!it->second.keep.IsEmpty() && it->second.keep.Value().IsDetached()) Erase(it);
    it = next;
  }
}

bool GuestMemoryTable::Gone(const Range& r) const { return r.mapping != nullptr && r.mapping->unmapped; }

bool GuestMemoryTable::Usable(const Range& r) const {
  return r.mapping == nullptr || (!r.mapping->unmapped && !r.mapping->Poisoned());
}

GuestMemoryTable::Ranges::const_iterator GuestMemoryTable::Holding(uint64_t iova, uint64_t length) const {
  // The last range starting at or below iova is the only one that can hold it.
  auto it = ranges_.upper_bound(iova);
  if (it == ranges_.begin()) return ranges_.end();
  --it;
  const uint64_t offset = iova - it->first;
  return offset < it->second.size && length <= it->second.size - offset ? it : ranges_.end();
}

GuestMemoryTable::Hit GuestMemoryTable::Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const {
  if (!enabled_.load(std::memory_order_acquire) || length == 0) return Hit::kMiss;
  auto it = Holding(iova, length);
  if (it == ranges_.end() || !Usable(it->second)) return Hit::kMiss;
  const Range& r = it->second;
  const uint64_t offset = iova - it->first;
  if (!Allows(access, r.readable, r.writable)) return Hit::kDenied;
  if (r.host == nullptr) return Hit::kIndirect;
  *out = r.host + offset;
  return Hit::kOk;
}

GuestMemoryTable::Hit GuestMemoryTable::WorkerSpace::Find(uint64_t iova, uint64_t length, Access access,
                                                          uint8_t** out) const {
  if (!table_->enabled_.load(std::memory_order_acquire) || length == 0) return Hit::kMiss;
  const uint64_t generation = table_->generation_.load(std::memory_order_acquire);
  if (generation != generation_) {
    host_ = nullptr;
    generation_ = generation;
  }
  const bool cached = host_ != nullptr && iova >= start_ && iova - start_ < size_ && length <= size_ - (iova - start_) &&
                      !mapping_->unmapped && !mapping_->Poisoned();
  if (!cached) {
    auto it = table_->Holding(iova, length);
    if (it == table_->ranges_.end() || !table_->Usable(it->second)) return Hit::kMiss;
    const Range& r = it->second;
    if (r.host == nullptr || r.mapping == nullptr) return Allows(access, r.readable, r.writable) ? Hit::kIndirect : Hit::kDenied;
    start_ = it->first;
    size_ = r.size;
    host_ = r.host;
    mapping_ = r.mapping;
    readable_ = r.readable;
    writable_ = r.writable;
  }
  if (!Allows(access, readable_, writable_)) return Hit::kDenied;
  *out = host_ + (iova - start_);
  return Hit::kOk;
}

GuestMemoryTable::Ranges::const_iterator GuestMemoryTable::FirstOverlap(uint64_t iova, uint64_t size) const {
  // Only the range starting at or below iova, and those starting inside [iova, iova + size), can overlap.
  auto it = ranges_.upper_bound(iova);
  if (it != ranges_.begin()) {
    auto before = std::prev(it);
    if (Overlap(before->first, before->second.size, iova, size)) return before;
  }
  if (it != ranges_.end() && Overlap(it->first, it->second.size, iova, size)) return it;
  return ranges_.end();
}

void GuestMemoryTable::PruneAll() {
  Prune();
  for (auto it = ranges_.begin(); it != ranges_.end();) {
    auto next = std::next(it);
    if (Gone(it->second)) Erase(it);
    it = next;
  }
}

bool GuestMemoryTable::Insert(Napi::Env env, uint64_t iova, Range range) {
  for (auto it = FirstOverlap(iova, range.size); it != ranges_.end(); it = FirstOverlap(iova, range.size)) {
    if (!Gone(it->second)) {
      ThrowRange(env, "range overlaps one already in the table");
      return false;
    }
    Erase(ranges_.find(it->first));  // its memory was unmapped without remove(): it is gone
  }
  {
    memory_lock::Exclusive quiesce;
    ranges_.emplace(iova, std::move(range));
    generation_.fetch_add(1, std::memory_order_release);
  }
  return true;
}

// add(iova: bigint, memory: ArrayBuffer | ArrayBufferView, readable, writable)
Napi::Value GuestMemoryTable::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  bool readable, writable;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBool(info, 2, &readable) || !ArgBool(info, 3, &writable)) {
    return env.Undefined();
  }
  Napi::ArrayBuffer buffer;
  size_t offset = 0, length = 0;
  if (info[1].IsArrayBuffer()) {
    buffer = info[1].As<Napi::ArrayBuffer>();
    length = buffer.ByteLength();
  } else if (info[1].IsTypedArray()) {
    Napi::TypedArray view = info[1].As<Napi::TypedArray>();
    buffer = view.ArrayBuffer();
    offset = view.ByteOffset();
    length = view.ByteLength();
  } else if (info[1].IsDataView()) {
    Napi::DataView view = info[1].As<Napi::DataView>();
    buffer = view.ArrayBuffer();
    offset = view.ByteOffset();
    length = view.ByteLength();
  } else {
    return ThrowTypeError(env, "expected an ArrayBuffer or a view of one");
  }
  if (env.IsExceptionPending()) return env.Undefined();
  Prune();  // a range whose buffer was detached is gone, and may not block this one
  if (buffer.IsDetached()) return ThrowRange(env, "the buffer is detached (unmapped)");
  if (length == 0) return ThrowRange(env, "the buffer is empty");
  if (!NoWrap(iova, length)) return ThrowRange(env, "range wraps past 2^64");
  uint8_t* host = static_cast<uint8_t*>(buffer.Data()) + offset;
  if (Insert(env, iova, Range{length, host, readable, writable, nullptr, Napi::Persistent(buffer)})) buffer_ranges_++;
  return env.Undefined();
}

// addMapping(iova: bigint, handle, readable, writable): guest [iova, iova + the mapping's length).
Napi::Value GuestMemoryTable::AddMapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  bool readable, writable;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBool(info, 2, &readable) || !ArgBool(info, 3, &writable)) {
    return env.Undefined();
  }
  Mapping* m = MappingOf(info[1]);
  if (m == nullptr) return env.Undefined();
  if (m->unmapped) return ThrowRange(env, "the mapping is unmapped");
  if (!NoWrap(iova, m->length)) return ThrowRange(env, "range wraps past 2^64");
  // A read-only mapping is private copy-on-write: writes through it would never reach the guest.
  if (writable && !m->writable) return ThrowRange(env, "a writable range needs a writable mapping");
  m->Ref();
  if (!Insert(env, iova, Range{m->length, m->start, readable, writable, m, Napi::Reference<Napi::ArrayBuffer>()})) {
    Mapping::Release(env, m);
  }
  return env.Undefined();
}

// addIndirect(iova: bigint, size: bigint, readable, writable)
Napi::Value GuestMemoryTable::AddIndirect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, size;
  bool readable, writable;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &size) || !ArgBool(info, 2, &readable) ||
      !ArgBool(info, 3, &writable)) {
    return env.Undefined();
  }
  if (size == 0) return ThrowRange(env, "size must not be 0");
  if (!NoWrap(iova, size)) return ThrowRange(env, "range wraps past 2^64");
  Insert(env, iova, Range{size, nullptr, readable, writable, nullptr, Napi::Reference<Napi::ArrayBuffer>()});
  return env.Undefined();
}

// remove(iova: bigint): whether a range started there.
Napi::Value GuestMemoryTable::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  if (!ArgBigUint64(info, 0, &iova)) return env.Undefined();
  auto it = ranges_.find(iova);
  if (it == ranges_.end()) return Napi::Boolean::New(env, false);
  Erase(it);
  return Napi::Boolean::New(env, true);
}

Napi::Value GuestMemoryTable::Clear(const Napi::CallbackInfo& info) {
  while (!ranges_.empty()) Erase(ranges_.begin());
  return info.Env().Undefined();
}

// list(): [{ iova, size, direct, readable, writable }] by address, after dropping ranges whose memory
// is gone.
Napi::Value GuestMemoryTable::List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PruneAll();
  Napi::Array out = Napi::Array::New(env, ranges_.size());
  uint32_t i = 0;
  for (const auto& [iova, r] : ranges_) {
    Napi::Object o = RangeObject(env, iova, r.size);
    o.Set("direct", Napi::Boolean::New(env, r.host != nullptr));
    o.Set("readable", Napi::Boolean::New(env, r.readable));
    o.Set("writable", Napi::Boolean::New(env, r.writable));
    out.Set(i++, o);
  }
  return out;
}

// lookup(iova: bigint, length: bigint, write): 'ok', 'miss', 'indirect' or 'denied' (for tests and
// callers that want to know where an address lies).
Napi::Value GuestMemoryTable::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, length;
  bool write;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &length) || !ArgBool(info, 2, &write)) {
    return env.Undefined();
  }
  Prune();
  uint8_t* host = nullptr;
  return Napi::String::New(env, kHitNames[static_cast<int>(Find(iova, length, write ? Access::kWrite : Access::kRead, &host))]);
}

// find(iova: bigint, length: bigint): the IOVA of the one range holding [iova, iova + length), or
// null. Ignores `enabled` and the access: the table of what is mapped, not a DMA.
Napi::Value GuestMemoryTable::FindRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, length;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &length)) return env.Undefined();
  Prune();
  auto it = Holding(iova, length);
  return it == ranges_.end() ? env.Null() : Napi::Value(Napi::BigInt::New(env, it->first));
}

// overlapping(iova: bigint, size: bigint): { iova, size } of a range overlapping [iova, iova + size), or
// null.
Napi::Value GuestMemoryTable::Overlapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, size;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &size)) return env.Undefined();
  if (size == 0 || !NoWrap(iova, size)) return ThrowRange(env, "empty or wrapping range");
  Prune();
  auto it = FirstOverlap(iova, size);
  return it == ranges_.end() ? env.Null() : Napi::Value(RangeObject(env, it->first, it->second.size));
}

// within(iova: bigint, size: bigint): { starts: bigint[], straddler: { iova, size } | null }: the ranges
// wholly inside [iova, iova + size), and one that crosses either end, if any.
Napi::Value GuestMemoryTable::Within(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, size;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &size)) return env.Undefined();
  if (size == 0 || !NoWrap(iova, size)) return ThrowRange(env, "empty or wrapping range");
  Prune();
  Napi::Array starts = Napi::Array::New(env);
  Napi::Value straddler = env.Null();
  const uint64_t last = iova + (size - 1);
  auto it = FirstOverlap(iova, size);
  uint32_t n = 0;
  for (; it != ranges_.end() && it->first <= last; ++it) {
    const uint64_t end = it->first + (it->second.size - 1);
    if (it->first < iova || end > last) {
      if (straddler.IsNull()) straddler = RangeObject(env, it->first, it->second.size);
      continue;
    }
    starts.Set(n++, Napi::BigInt::New(env, it->first));
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("starts", starts);
  o.Set("straddler", straddler);
  return o;
}

// setEnabled(bool): whether DMA may happen at all (Bus Master Enable; a client present).
Napi::Value GuestMemoryTable::SetEnabled(const Napi::CallbackInfo& info) {
  bool enabled;
  if (!ArgBool(info, 0, &enabled)) return info.Env().Undefined();
  if (enabled) {
    enabled_.store(true, std::memory_order_release);
  } else {
    // Bus Master Enable cleared: once this returns, no DMA is in flight either. A worker checks the
    // gate at the start of a burst; the burst in progress ends before the exclusive lock is had.
    memory_lock::Exclusive quiesce;
    enabled_.store(false, std::memory_order_release);
  }
  return info.Env().Undefined();
}

Napi::Value GuestMemoryTable::GetEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), enabled_.load());
}

Napi::Value GuestMemoryTable::GetCount(const Napi::CallbackInfo& info) {
  PruneAll();
  return Napi::Number::New(info.Env(), static_cast<double>(ranges_.size()));
}

void InitGuestMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("GuestMemoryTable", GuestMemoryTable::Define(env));
}

}  // namespace emu
