// Generic fd calls: close, a CLOEXEC duplicate, O_NONBLOCK.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

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

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dupCloexec", Napi::Function::New(env, DupCloexec, "dupCloexec"));
  exports.Set("setNonblocking", Napi::Function::New(env, SetNonblocking, "setNonblocking"));
}

}  // namespace emu
