// Fault injection (fault_injection.h) and its binding: injectFault(point) arms a point, by name.
#include "fault_injection.h"

#include <cstring>

#include "errors.h"
#include "module.h"

namespace emu {
namespace fault {

std::atomic<uint32_t> armed{0};

}  // namespace fault

namespace {

constexpr const char* kNames[fault::kPoints] = {"workerBurst", "connectionRead", "napiCall", "irqTimer"};

Napi::Value InjectFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowTypeError(env, "expected a fault point's name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  for (uint32_t p = 0; p < fault::kPoints; p++) {
    if (name == kNames[p]) {
      fault::armed.fetch_or(1u << p, std::memory_order_acq_rel);
      return env.Undefined();
    }
  }
  return ThrowTypeError(env, "no such fault point");
}

}  // namespace

void InitFaultInjection(Napi::Env env, Napi::Object exports) {
  exports.Set("injectFault", Napi::Function::New(env, InjectFault, "injectFault"));
}

}  // namespace emu
