// eventfd(2): create, and read/write the 64-bit counter without ever blocking.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

namespace emu {
namespace {

// Whether fd is ready for `events` right now. An adopted eventfd may be blocking (fromFd keeps
// its flags, which it shares with the peer), so every read/write checks first.
int Ready(int fd, short events) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (p.revents & POLLNVAL) return -EBADF;
  return (p.revents & events) != 0 ? 1 : 0;
}

// eventfd(initval, semaphore): fd
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t initval;
  bool semaphore;
  if (!ArgInt(info, 0, 0, UINT32_MAX, &initval) || !ArgBool(info, 1, &semaphore)) return env.Undefined();
  int fd = eventfd(static_cast<unsigned int>(initval), EFD_CLOEXEC | EFD_NONBLOCK | (semaphore ? EFD_SEMAPHORE : 0));
  if (fd < 0) return ThrowErrno(env, errno, "eventfd");
  return Napi::Number::New(env, fd);
}

// eventfdRead(fd): the counter (bigint, then cleared; 1 in semaphore mode), or null if it is 0.
Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  int ready = Ready(fd, POLLIN);
  if (ready < 0) return ThrowErrno(env, -ready, "read");
  if (ready == 0) return env.Null();
  uint64_t value;
  ssize_t n;
  do {
    n = read(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? env.Null() : ThrowErrno(env, errno, "read");
  if (n != sizeof(value)) return ThrowErrno(env, EIO, "read");
  return Napi::BigInt::New(env, value);
}

// eventfdWrite(fd, value: bigint): adds value to the counter.
Napi::Value Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t value;
  if (!ArgFd(info, 0, &fd) || !ArgBigUint64(info, 1, &value)) return env.Undefined();
  // Not writable means the counter is at its maximum: report EAGAIN rather than block.
  int ready = Ready(fd, POLLOUT);
  if (ready < 0) return ThrowErrno(env, -ready, "write");
  if (ready == 0) return ThrowErrno(env, EAGAIN, "write");
  ssize_t n;
  do {
    n = write(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ThrowErrno(env, errno, "write");
  return env.Undefined();
}

}  // namespace

void InitEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, Create, "eventfd"));
  exports.Set("eventfdRead", Napi::Function::New(env, Read, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, Write, "eventfdWrite"));
}

}  // namespace emu
