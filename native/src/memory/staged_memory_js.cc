#include "memory/staged_memory_js.h"

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

namespace emu {

Napi::FunctionReference* StagedMemory::constructor_ = nullptr;

StagedMemory* StagedMemory::FromValue(Napi::Value v) {
  if (constructor_ == nullptr || !v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor_->Value())) {
    return nullptr;
  }
  return Unwrap(v.As<Napi::Object>());
}

Napi::Function StagedMemory::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "StagedMemory",
                                 {
                                     InstanceMethod<&StagedMemory::Add>("add"),
                                     InstanceAccessor<&StagedMemory::GetBytes>("bytes"),
                                 });
  constructor_ = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

// add(iova: bigint, bytes: Uint8Array | null, length): a window the caller fetched (null: the fetch of
// [iova, iova + length) failed). False when the window is empty or too large (StagedSpace::kMaxWindow).
Napi::Value StagedMemory::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t iova;
  int64_t length;
  const uint8_t* bytes = nullptr;
  size_t have = 0;
  const bool failed = info[1].IsNull();
  // The Arg helpers throw their own TypeError.
  if (!ArgBigUint64(info, 0, &iova) || !ArgInt(info, 2, 0, StagedSpace::kMaxWindow, &length)) return env.Undefined();
  if (!failed && !TypedBytes(info[1], &bytes, &have)) return ThrowTypeError(env, "bytes must be a Uint8Array or null");
  if (!failed && have != static_cast<size_t>(length)) return ThrowTypeError(env, "bytes must hold length bytes");
  return Napi::Boolean::New(env, space_.Add(iova, failed ? nullptr : bytes, static_cast<uint64_t>(length)));
}

Napi::Value StagedMemory::GetBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(space_.Bytes()));
}

void StagedMemory::Report(Napi::Env env, Napi::Object result, bool stopped) {
  const StagedSpace::Range* need = space_.Need();
  if (stopped && need != nullptr) {
    Napi::Object n = Napi::Object::New(env);
    n.Set("iova", Napi::BigInt::New(env, need->iova));
    n.Set("length", Napi::Number::New(env, static_cast<double>(need->length)));
    result.Set("need", n);
  }
  std::vector<StagedSpace::Write> writes = space_.TakeWrites();
  Napi::Array list = Napi::Array::New(env, writes.size());
  for (size_t i = 0; i < writes.size(); i++) {
    Napi::Object w = Napi::Object::New(env);
    w.Set("iova", Napi::BigInt::New(env, writes[i].iova));
    w.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, writes[i].bytes.data(), writes[i].bytes.size()));
    list.Set(static_cast<uint32_t>(i), w);
  }
  result.Set("writes", list);
}

void InitStagedMemory(Napi::Env env, Napi::Object exports) { exports.Set("StagedMemory", StagedMemory::Define(env)); }

}  // namespace emu
