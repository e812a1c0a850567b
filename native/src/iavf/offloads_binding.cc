// The offloads' algorithms for JavaScript, for driver-iavf's TypeScript path, so each is computed by
// one implementation: crc32c(data, previous?) (crc32c.h) for SCTP's TX checksum, iavfRxOffloadBits(frame)
// (iavf_offloads.h) for the RX write-back's packet type and checksum status. (What a TX packet becomes
// on the wire, iavfTxFrames, is with the ring calls in iavf_rings.cc.)
#include "base/errors.h"
#include "iavf/crc32c.h"
#include "iavf/iavf_offloads.h"
#include "module.h"

namespace emu {
namespace {

Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowTypeError(env, "expected a Uint8Array");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  uint32_t previous = 0;
  if (info.Length() > 1 && info[1].IsNumber()) previous = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(env, Crc32c(data.Data(), data.ByteLength(), previous));
}

Napi::Value IavfRxOffloadBitsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowTypeError(env, "expected a Uint8Array");
  }
  Napi::Uint8Array frame = info[0].As<Napi::Uint8Array>();
  return Napi::BigInt::New(env, iavf::RxOffloadBits(frame.Data(), frame.ByteLength()));
}

}  // namespace

void InitOffloads(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs, "crc32c"));
  exports.Set("iavfRxOffloadBits", Napi::Function::New(env, IavfRxOffloadBitsJs, "iavfRxOffloadBits"));
}

}  // namespace emu
