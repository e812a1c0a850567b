// Argument readers for the raw binding. Each returns false after throwing a TypeError, so a bad
// argument can never reach a syscall as a default-converted 0.
#pragma once

#include <napi.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/errors.h"

namespace emu {

inline bool ArgFd(const Napi::CallbackInfo& info, size_t i, int* out) {
  Napi::Value v = info[i];
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= 0 && d <= INT_MAX && std::floor(d) == d) {
      *out = static_cast<int>(d);
      return true;
    }
  }
  ThrowTypeError(info.Env(), "expected a file descriptor (integer >= 0)");
  return false;
}

inline bool ArgInt(const Napi::CallbackInfo& info, size_t i, int64_t min, int64_t max, int64_t* out) {
  Napi::Value v = info[i];
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= static_cast<double>(min) && d <= static_cast<double>(max) && std::floor(d) == d) {
      *out = static_cast<int64_t>(d);
      return true;
    }
  }
  ThrowTypeError(info.Env(), "expected an integer in range");
  return false;
}

// A 64-bit unsigned value passed as a bigint (offsets and sizes may exceed 2^53).
inline bool ArgBigUint64(const Napi::CallbackInfo& info, size_t i, uint64_t* out) {
  Napi::Value v = info[i];
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t value = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (lossless) {
      *out = value;
      return true;
    }
  }
  ThrowTypeError(info.Env(), "expected a bigint in the uint64 range");
  return false;
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i, bool* out) {
  Napi::Value v = info[i];
  if (v.IsBoolean()) {
    *out = v.As<Napi::Boolean>().Value();
    return true;
  }
  ThrowTypeError(info.Env(), "expected a boolean");
  return false;
}

inline bool ArgString(const Napi::CallbackInfo& info, size_t i, std::string* out) {
  Napi::Value v = info[i];
  if (v.IsString()) {
    *out = v.As<Napi::String>().Utf8Value();
    return true;
  }
  ThrowTypeError(info.Env(), "expected a string");
  return false;
}

// Fields of an options object. They do not throw: the caller reports one error for the whole object.
inline bool FieldU32(Napi::Object o, const char* key, uint32_t max, uint32_t* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || std::floor(d) != d) return false;
  *out = static_cast<uint32_t>(d);
  return true;
}

inline bool FieldBool(Napi::Object o, const char* key, bool* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) return false;
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

inline bool FieldBigUint64(Napi::Object o, const char* key, uint64_t* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsBigInt()) return false;
  bool lossless = false;
  *out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  return lossless;
}

// The bytes a typed array views (no copy); false if v is not one.
inline bool TypedBytes(Napi::Value v, const uint8_t** data, size_t* length) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  *data = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  *length = a.ByteLength();
  return true;
}

// Exactly n bytes from a typed array.
inline bool FieldBytes(Napi::Object o, const char* key, uint8_t* out, size_t n) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().ByteLength() != n) return false;
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  std::memcpy(out, static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(), n);
  return true;
}

}  // namespace emu
