// Entry point of emu_native: generic fd helpers plus every concern's exports.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "args.h"
#include "errors.h"
#include "guard.h"
#include "module.h"

#ifndef EMU_NATIVE_SOURCE_HASH
#error "EMU_NATIVE_SOURCE_HASH must be defined by binding.gyp (scripts/source-hash.mjs)"
#endif

namespace emu {
namespace {

// close(fd). EINTR is not an error on Linux: the fd is already released, and retrying could
// close an fd another thread just received.
Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  if (close(fd) < 0 && errno != EINTR) return ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// A CLOEXEC duplicate, for fds that must outlive the caller's copy (queued writes).
Napi::Value DupCloexec(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), dup);
}

// setNonblocking(fd, on = true): sets or clears O_NONBLOCK on the open file description (shared with
// every holder of the fd, e.g. the peer that sent it); returns whether it changed.
Napi::Value SetNonblocking(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  const bool on = info[1].IsUndefined() || info[1].ToBoolean().Value();
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return ThrowErrno(info.Env(), errno, "fcntl");
  const int want = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (want == flags) return Napi::Boolean::New(info.Env(), false);
  if (fcntl(fd, F_SETFL, want) < 0) return ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace
}  // namespace emu

// NODE_API_MODULE pastes the function name into an identifier, so Init lives outside the namespace.
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace emu;
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(sysconf(_SC_PAGESIZE))));
  // Lets the TS side prove which sources this binary was built from (lib/prebuild.test.ts).
  exports.Set("sourceHash", Napi::String::New(env, EMU_NATIVE_SOURCE_HASH));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
  exports.Set("setNonblocking", Napi::Function::New(env, SetNonblocking, "setNonblocking"));
  InitUnixSocket(env, exports);
  InitPoller(env, exports);
  InitMmap(env, exports);
  InitEventFd(env, exports);
  InitMemfd(env, exports);
  InitSdNotify(env, exports);
  InitTap(env, exports);
  InitGuestMemory(env, exports);
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
  guard::Init(env, exports);
  return exports;
}

NODE_API_MODULE(emu_native, Init)
