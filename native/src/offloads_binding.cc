// The offloads' algorithms for JavaScript: crc32c(data, previous?) for the TypeScript TX path, so
// SCTP's checksum is computed by one implementation (crc32c.h).
#include "crc32c.h"
#include "errors.h"
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

}  // namespace

void InitOffloads(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs, "crc32c"));
}

}  // namespace emu
