// Entry point of emu_native: every concern registers its own exports (module.h).
#include <unistd.h>

#include "module.h"

#ifndef EMU_NATIVE_SOURCE_HASH
#error "EMU_NATIVE_SOURCE_HASH must be defined by binding.gyp (scripts/source-hash.mjs)"
#endif

// NODE_API_MODULE pastes the function name into an identifier, so Init lives outside the namespace.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace emu;
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  // Lets the TS side prove which sources this binary was built from (lib/prebuild.test.ts).
  exports.Set("sourceHash", Napi::String::New(env, EMU_NATIVE_SOURCE_HASH));
  InitFd(env, exports);
  InitUnixSocket(env, exports);
  InitPoller(env, exports);
  InitMmap(env, exports);
  InitEventFd(env, exports);
  InitMemfd(env, exports);
  InitSdNotify(env, exports);
  InitTap(env, exports);
  InitGuestMemory(env, exports);
  InitStagedMemory(env, exports);
  InitDoorbellWatcher(env, exports);
  InitDataPlane(env, exports);
  InitGuestDriver(env, exports);
  InitTrapChannel(env, exports);
  InitIrqLines(env, exports);
  InitIavfVectors(env, exports);
  InitOffloads(env, exports);
  InitTxFrames(env, exports);
  InitFaultInjection(env, exports);
  InitWatchdog(env, exports);
  InitClientFiles(env, exports);
  InitGuard(env, exports);
  return exports;
}

NODE_API_MODULE(emu_native, Init)
