// mmap of an fd (guest memory shared by the VMM) exposed as an external ArrayBuffer.
//
//   mmap(fd, offset: bigint, length, writable): { buffer, address: bigint, handle }
//   munmap(handle, buffer)
//
// The mapping is released exactly once: by munmap(), or by the ArrayBuffer's finalizer if it is
// collected first. munmap() also detaches the ArrayBuffer, so views see length 0 instead of
// touching unmapped memory.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "args.h"
#include "errors.h"
#include "module.h"

namespace emu {
namespace {

// Owned by the ArrayBuffer's finalizer and by the handle TS keeps; whichever is finalized last frees
// it. Both run on the JS thread that created them, so a plain count suffices (std::shared_ptr would
// also raise the prebuild's glibc floor to 2.32 for no benefit).
struct Mapping {
  void* base;   // page-aligned start handed to munmap
  size_t size;  // includes the leading bytes below an unaligned offset
  bool unmapped = false;
  int owners = 2;

  void Unmap() {
    if (!unmapped) {
      unmapped = true;
      munmap(base, size);
    }
  }
  static void Release(Mapping* mapping) {
    if (--mapping->owners == 0) delete mapping;
  }
};

Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset;
  int64_t length;
  bool writable;
  if (!ArgFd(info, 0, &fd) || !ArgBigUint64(info, 1, &offset) ||
      !ArgInt(info, 2, 1, INT64_C(1) << 53, &length) || !ArgBool(info, 3, &writable)) {
    return env.Undefined();
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t aligned = offset & ~(page - 1);
  const uint64_t delta = offset - aligned;
  if (aligned > static_cast<uint64_t>(INT64_MAX)) return ThrowErrno(env, EOVERFLOW, "mmap");
  const size_t size = static_cast<size_t>(length) + static_cast<size_t>(delta);
  // A read-only mapping still gets PROT_WRITE, privately: JS cannot make an ArrayBuffer read-only,
  // and a store into a PROT_READ page would kill the process. MAP_PRIVATE keeps such stores in
  // copy-on-write pages that never reach the fd, and needs only read access to the fd.
  const int flags = writable ? MAP_SHARED : MAP_PRIVATE;
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, static_cast<off_t>(aligned));
  if (base == MAP_FAILED) return ThrowErrno(env, errno, "mmap");

  auto* mapping = new Mapping{base, size};
  uint8_t* start = static_cast<uint8_t*>(base) + delta;
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
      env, start, static_cast<size_t>(length),
      [](Napi::Env, void*, Mapping* m) {
        m->Unmap();
        Mapping::Release(m);
      },
      mapping);
  if (env.IsExceptionPending()) {
    // Node-API refused the external buffer; no finalizer will run.
    mapping->Unmap();
    delete mapping;
    return env.Undefined();
  }
  Napi::External<Mapping> handle =
      Napi::External<Mapping>::New(env, mapping, [](Napi::Env, Mapping* m) { Mapping::Release(m); });
  if (env.IsExceptionPending()) {
    Mapping::Release(mapping);  // the buffer's finalizer still owns (and unmaps) it
    return env.Undefined();
  }

  Napi::Object result = Napi::Object::New(env);
  result.Set("buffer", buffer);
  result.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(start))));
  result.Set("handle", handle);
  return result;
}

Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal() || !info[1].IsArrayBuffer()) return ThrowTypeError(env, "expected (handle, ArrayBuffer)");
  Mapping* mapping = info[0].As<Napi::External<Mapping>>().Data();
  Napi::ArrayBuffer buffer = info[1].As<Napi::ArrayBuffer>();
  // Detach before unmapping, so no JS-visible view ever spans unmapped memory.
  if (!buffer.IsDetached()) buffer.Detach();
  if (env.IsExceptionPending()) return env.Undefined();
  mapping->Unmap();
  return env.Undefined();
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Map, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Unmap, "munmap"));
}

}  // namespace emu
