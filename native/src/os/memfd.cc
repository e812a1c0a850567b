// memfds, and what a received memory fd is:
//
//   memfdCreate(name, size: bigint, seal): fd
//     memfd_create(MFD_CLOEXEC | MFD_ALLOW_SEALING) + ftruncate; with seal, F_SEAL_SHRINK |
//     F_SEAL_GROW | F_SEAL_SEAL: a peer it is handed to can neither shrink it under our mappings
//     nor add seals of its own.
//   fileInfo(fd): { regular, size: bigint, seals }   fstat + F_GET_SEALS (seals 0 where unsupported)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

namespace emu {
namespace {

Napi::Value Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  uint64_t size;
  bool seal;
  if (!ArgString(info, 0, &name) || !ArgBigUint64(info, 1, &size) || !ArgBool(info, 2, &seal)) return env.Undefined();
  if (size > static_cast<uint64_t>(INT64_MAX)) return ThrowErrno(env, EFBIG, "ftruncate");
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return ThrowErrno(env, errno, "memfd_create");
  if (ftruncate(fd, static_cast<off_t>(size)) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ftruncate");
  }
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "fcntl");
  }
  return Napi::Number::New(env, fd);
}

Napi::Value FileInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  struct stat st;
  if (fstat(fd, &st) < 0) return ThrowErrno(env, errno, "fstat");
  // Files that cannot be sealed (most but memfds) answer EINVAL: no seals.
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) seals = 0;
  Napi::Object o = Napi::Object::New(env);
  o.Set("regular", Napi::Boolean::New(env, S_ISREG(st.st_mode)));
  o.Set("size", Napi::BigInt::New(env, static_cast<uint64_t>(st.st_size < 0 ? 0 : st.st_size)));
  o.Set("seals", Napi::Number::New(env, seals));
  return o;
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, Create, "memfdCreate"));
  exports.Set("fileInfo", Napi::Function::New(env, FileInfo, "fileInfo"));
  exports.Set("sealShrink", Napi::Number::New(env, F_SEAL_SHRINK));
  exports.Set("sealGrow", Napi::Number::New(env, F_SEAL_GROW));
  exports.Set("sealSeal", Napi::Number::New(env, F_SEAL_SEAL));
  exports.Set("sealWrite", Napi::Number::New(env, F_SEAL_WRITE));
}

}  // namespace emu
