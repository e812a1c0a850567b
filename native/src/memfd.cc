// memfd_create(2) + ftruncate: anonymous shared memory to hand to a peer (e.g. as guest RAM in tests
// and in the VMM-side client).
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "args.h"
#include "errors.h"
#include "module.h"

namespace emu {
namespace {

// memfdCreate(name, size: bigint): fd
Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  uint64_t size;
  if (!ArgString(info, 0, &name) || !ArgBigUint64(info, 1, &size)) return env.Undefined();
  if (size > static_cast<uint64_t>(INT64_MAX)) return ThrowErrno(env, EFBIG, "ftruncate");
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ftruncate");
  }
  return Napi::Number::New(env, fd);
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, Create, "memfdCreate"));
}

}  // namespace emu
