// Fault injection (fault_injection.h) and its binding: injectFault(point) arms a point, by name.
#include "fault_injection.h"

#include <cstring>

#include "errors.h"
#include "lock_order.h"
#include "module.h"

namespace emu {
namespace {

constexpr const char* kNames[fault::kPoints] = {"workerBurst", "connectionRead", "napiCall", "irqTimer", "workerHold"};

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

#ifdef EMU_LOCK_ORDER_CHECKS
// Takes a switch's rank, then a worker's: the checks must abort (scripts/test-sanitizers.sh).
Napi::Value LockOrderProbe(const Napi::CallbackInfo& info) {
  lock_order::Acquired(lock_order::kSwitch);
  lock_order::Acquired(lock_order::kWorker);
  return info.Env().Undefined();
}
#endif

}  // namespace

void InitFaultInjection(Napi::Env env, Napi::Object exports) {
  exports.Set("injectFault", Napi::Function::New(env, InjectFault, "injectFault"));
#ifdef EMU_LOCK_ORDER_CHECKS
  exports.Set("lockOrderProbe", Napi::Function::New(env, LockOrderProbe, "lockOrderProbe"));
#endif
}

}  // namespace emu
