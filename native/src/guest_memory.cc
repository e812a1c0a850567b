#include "guest_memory.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "args.h"
#include "errors.h"
#include "module.h"

namespace emu {
namespace {

Napi::Value ThrowRange(Napi::Env env, const char* message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// [iova, iova + size) does not wrap past 2^64 (size > 0).
inline bool NoWrap(uint64_t iova, uint64_t size) { return size - 1 <= UINT64_MAX - iova; }

}  // namespace

Napi::Function GuestMemoryTable::Define(Napi::Env env) {
  return DefineClass(env, "GuestMemoryTable",
                     {
                         InstanceMethod<&GuestMemoryTable::Add>("add"),
                         InstanceMethod<&GuestMemoryTable::AddIndirect>("addIndirect"),
                         InstanceMethod<&GuestMemoryTable::Remove>("remove"),
                         InstanceMethod<&GuestMemoryTable::Clear>("clear"),
                         InstanceMethod<&GuestMemoryTable::List>("list"),
                         InstanceMethod<&GuestMemoryTable::Lookup>("lookup"),
                         InstanceMethod<&GuestMemoryTable::TxRing>("txRing"),
                         InstanceMethod<&GuestMemoryTable::RxRing>("rxRing"),
                         InstanceMethod<&GuestMemoryTable::GuestPostTx>("guestPostTx"),
                         InstanceMethod<&GuestMemoryTable::GuestPostRx>("guestPostRx"),
                     });
}

GuestMemoryTable::GuestMemoryTable(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GuestMemoryTable>(info) {}

void GuestMemoryTable::Prune() {
  ranges_.erase(std::remove_if(ranges_.begin(), ranges_.end(),
                               [](const Range& r) { return r.host != nullptr && r.keep.Value().IsDetached(); }),
                ranges_.end());
}

GuestMemoryTable::Hit GuestMemoryTable::Find(uint64_t iova, uint64_t length, bool write, uint8_t** out) const {
  if (length == 0 || ranges_.empty()) return Hit::kMiss;
  // The last range starting at or below iova is the only one that can hold it.
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), iova,
                             [](uint64_t a, const Range& r) { return a < r.iova; });
  if (it == ranges_.begin()) return Hit::kMiss;
  const Range& r = *(it - 1);
  const uint64_t offset = iova - r.iova;
  if (offset >= r.size || length > r.size - offset) return Hit::kMiss;
  if (r.host == nullptr) return Hit::kIndirect;
  if (write ? !r.writable : !r.readable) return Hit::kDenied;
  *out = r.host + offset;
  return Hit::kOk;
}

bool GuestMemoryTable::Insert(Napi::Env env, Range range) {
  for (const Range& r : ranges_) {
    if (range.iova <= r.iova + (r.size - 1) && r.iova <= range.iova + (range.size - 1)) {
      ThrowRange(env, "range overlaps one already in the table");
      return false;
    }
  }
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), range.iova,
                             [](uint64_t a, const Range& r) { return a < r.iova; });
  ranges_.insert(it, std::move(range));
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
  if (buffer.IsDetached()) return ThrowRange(env, "the buffer is detached (unmapped)");
  if (length == 0) return ThrowRange(env, "the buffer is empty");
  if (!NoWrap(iova, length)) return ThrowRange(env, "range wraps past 2^64");
  uint8_t* host = static_cast<uint8_t*>(buffer.Data()) + offset;
  Insert(env, Range{iova, length, host, readable, writable, Napi::Persistent(buffer)});
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
  Insert(env, Range{iova, size, nullptr, readable, writable, Napi::Reference<Napi::ArrayBuffer>()});
  return env.Undefined();
}

// remove(iova: bigint): whether a range started there.
Napi::Value GuestMemoryTable::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  if (!ArgBigUint64(info, 0, &iova)) return env.Undefined();
  auto it = std::find_if(ranges_.begin(), ranges_.end(), [iova](const Range& r) { return r.iova == iova; });
  if (it == ranges_.end()) return Napi::Boolean::New(env, false);
  ranges_.erase(it);
  return Napi::Boolean::New(env, true);
}

Napi::Value GuestMemoryTable::Clear(const Napi::CallbackInfo& info) {
  ranges_.clear();
  return info.Env().Undefined();
}

// list(): [{ iova, size, direct, readable, writable }], after dropping detached ranges.
Napi::Value GuestMemoryTable::List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Prune();
  Napi::Array out = Napi::Array::New(env, ranges_.size());
  for (size_t i = 0; i < ranges_.size(); i++) {
    const Range& r = ranges_[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("iova", Napi::BigInt::New(env, r.iova));
    o.Set("size", Napi::BigInt::New(env, r.size));
    o.Set("direct", Napi::Boolean::New(env, r.host != nullptr));
    o.Set("readable", Napi::Boolean::New(env, r.readable));
    o.Set("writable", Napi::Boolean::New(env, r.writable));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// lookup(iova: bigint, length: bigint, write): 0 ok, 1 miss, 2 indirect, 3 denied (for tests and callers
// that want to know where an address lies).
Napi::Value GuestMemoryTable::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova, length;
  bool write;
  if (!ArgBigUint64(info, 0, &iova) || !ArgBigUint64(info, 1, &length) || !ArgBool(info, 2, &write)) {
    return env.Undefined();
  }
  Prune();
  uint8_t* host = nullptr;
  return Napi::Number::New(env, static_cast<int>(Find(iova, length, write, &host)));
}

void InitGuestMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("GuestMemoryTable", GuestMemoryTable::Define(env));
}

}  // namespace emu
