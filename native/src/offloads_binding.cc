// The offloads' algorithms for JavaScript, for driver-iavf's TypeScript path, so each is computed by
// one implementation: crc32c(data, previous?) (crc32c.h) for SCTP's TX checksum, iavfRxOffloadBits(frame)
// (iavf_offloads.h) for the RX write-back's packet type and checksum status, iavfTxFrames(packet, desc)
// (iavf_ring_core.h's FrameBuilder) for what a gathered TX packet becomes on the wire.
#include "args.h"
#include "crc32c.h"
#include "errors.h"
#include "iavf_offloads.h"
#include "iavf_ring_core.h"
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

// iavfTxFrames(packet, { cmd, macLen, ipLen, l4Len, tso, mss, tsoLen, l2tag1 }): the frames FrameBuilder
// makes of one gathered packet (checksums, TSO segments, the VLAN tag), as the native TX walk does:
// { frames: Buffer[], badTso }.
Napi::Value IavfTxFramesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* data;
  size_t length;
  if (!TypedBytes(info[0], &data, &length)) return ThrowTypeError(env, "expected the packet as a Uint8Array");
  if (length > iavf::kMaxTso) return ThrowTypeError(env, "packet longer than a TSO may be (256 KiB)");
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
  iavf::TxPacket p;
  p.parts[0] = {data, static_cast<uint32_t>(length)};
  p.nparts = 1;
  p.total = length;
  p.tso = tso;
  p.mss = mss;
  p.tso_len = tso_len;
  p.cmd = cmd;
  p.offset = (mac_len / 2) | ((ip_len / 4) << 7) | ((l4_len / 4) << 14);
  p.l2tag1 = static_cast<uint16_t>(l2tag1);
  uint32_t counts[iavf::kCountSize] = {};
  Napi::Array frames = Napi::Array::New(env);
  Napi::Buffer<uint8_t> pending;
  iavf::FrameBuilder builder;
  const bool ok = builder.Build(
      p, counts,
      [&](size_t n) -> uint8_t* {
        pending = Napi::Buffer<uint8_t>::New(env, n);
        return env.IsExceptionPending() ? nullptr : pending.Data();
      },
      [&](uint8_t*, size_t n) {
        frames.Set(frames.Length(), n == pending.Length() ? pending : Napi::Buffer<uint8_t>::Copy(env, pending.Data(), n));
        return !env.IsExceptionPending();
      });
  if (!ok) return env.Undefined();  // an exception is pending
  Napi::Object out = Napi::Object::New(env);
  out.Set("frames", frames);
  out.Set("badTso", Napi::Boolean::New(env, counts[iavf::kBadTso] > 0));
  return out;
}

}  // namespace

void InitOffloads(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs, "crc32c"));
  exports.Set("iavfRxOffloadBits", Napi::Function::New(env, IavfRxOffloadBitsJs, "iavfRxOffloadBits"));
  exports.Set("iavfTxFrames", Napi::Function::New(env, IavfTxFramesJs, "iavfTxFrames"));
}

}  // namespace emu
