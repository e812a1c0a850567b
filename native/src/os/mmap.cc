// mmap of an fd (guest memory shared by the VMM), of any size, reached from JS through windows and
// copies (see mapping.h):
//
//   mmap(fd, offset: bigint, length, writable): { handle, address: bigint }
//   mappingView(handle, offset, length): ArrayBuffer   a window, detached by munmap
//   mappingRead(handle, offset, length): Buffer        a copy
//   mappingWrite(handle, offset, data: Uint8Array)
//   mappingFaults(handle): number                      SIGBUS faults the guard caught in it
//   munmap(handle)
//
// Every mapping is covered by the SIGBUS guard (guard.h): a client that shrinks the file under it
// costs zeros where its pages were, not the process.
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "base/args.h"
#include "base/errors.h"
#include "memory/guard.h"
#include "memory/mapping.h"
#include "module.h"

namespace emu {

Mapping* MappingOf(Napi::Value handle) {
  if (!handle.IsExternal()) {
    ThrowTypeError(handle.Env(), "expected a mapping handle");
    return nullptr;
  }
  return handle.As<Napi::External<Mapping>>().Data();
}

namespace {

// The size of the pages behind fd: a hugetlbfs file's huge pages, else the system's.
size_t FilePageSize(int fd) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && fs.f_type == HUGETLBFS_MAGIC && fs.f_bsize > 0) return static_cast<size_t>(fs.f_bsize);
  return page;
}

// A live mapping and a range [offset, offset + length) inside it, or nullptr after throwing.
Mapping* Checked(const Napi::CallbackInfo& info, int64_t* offset, int64_t* length) {
  Mapping* m = MappingOf(info[0]);
  if (m == nullptr) return nullptr;
  if (!ArgInt(info, 1, 0, INT64_C(1) << 53, offset) || !ArgInt(info, 2, 0, INT64_C(1) << 53, length)) return nullptr;
  if (m->unmapped) {
    ThrowErrno(info.Env(), EBADF, "mapping");
    return nullptr;
  }
  if (m->Poisoned()) {
    Napi::RangeError::New(info.Env(), "the mapping's memory vanished under it (its file shrank): no longer used")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  if (static_cast<uint64_t>(*offset) > m->length || static_cast<uint64_t>(*length) > m->length - *offset) {
    Napi::RangeError::New(info.Env(), "range outside the mapping").ThrowAsJavaScriptException();
    return nullptr;
  }
  return m;
}

Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint64_t offset;
  int64_t length;
  bool writable;
  if (!ArgFd(info, 0, &fd) || !ArgBigUint64(info, 1, &offset) || !ArgInt(info, 2, 1, INT64_C(1) << 53, &length) ||
      !ArgBool(info, 3, &writable)) {
    return env.Undefined();
  }
  const size_t page_size = FilePageSize(fd);
  const uint64_t aligned = offset & ~(static_cast<uint64_t>(page_size) - 1);
  const uint64_t delta = offset - aligned;
  if (aligned > static_cast<uint64_t>(INT64_MAX)) return ThrowErrno(env, EOVERFLOW, "mmap");
  const size_t size = static_cast<size_t>(length) + static_cast<size_t>(delta);
  // A read-only mapping still gets PROT_WRITE, privately: JS cannot make an ArrayBuffer read-only,
  // and a store into a PROT_READ page would kill the process. MAP_PRIVATE keeps such stores in
  // copy-on-write pages that never reach the fd, and needs only read access to the fd.
  const int flags = writable ? MAP_SHARED : MAP_PRIVATE;
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, static_cast<off_t>(aligned));
  if (base == MAP_FAILED) return ThrowErrno(env, errno, "mmap");

  auto* m = new Mapping();
  m->base = base;
  m->size = size;
  m->start = static_cast<uint8_t*>(base) + delta;
  m->length = static_cast<size_t>(length);
  m->writable = writable;
  m->guard_slot = guard::Register(base, size, page_size);
  m->faults = guard::FaultCounter(m->guard_slot);
  Napi::External<Mapping> handle;
  try {
    handle = Napi::External<Mapping>::New(env, m, [](Napi::Env e, Mapping* mapping) { Mapping::Release(e, mapping); });
  } catch (...) {
    m->Unmap(env);
    delete m;
    throw;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("handle", handle);
  result.Set("address", Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(m->start))));
  return result;
}

Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t offset, length;
  Mapping* m = Checked(info, &offset, &length);
  if (m == nullptr) return env.Undefined();
  m->Ref();
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(
        env, m->start + offset, static_cast<size_t>(length),
        [](Napi::Env e, void*, Mapping* mapping) { Mapping::Release(e, mapping); }, m);
  } catch (...) {
    // Refused (e.g. beyond V8's largest ArrayBuffer): no finalizer will run.
    Mapping::Release(env, m);
    throw;
  }
  m->Track(env, buffer);
  return buffer;
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t offset, length;
  Mapping* m = Checked(info, &offset, &length);
  if (m == nullptr) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, m->start + offset, static_cast<size_t>(length));
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[3].IsTypedArray()) return ThrowTypeError(env, "expected the data as a Uint8Array");
  Napi::TypedArray data = info[3].As<Napi::TypedArray>();
  int64_t offset, length;
  Mapping* m = Checked(info, &offset, &length);
  if (m == nullptr) return env.Undefined();
  if (static_cast<size_t>(length) != data.ByteLength()) return ThrowTypeError(env, "length must be the data's");
  const uint8_t* bytes = static_cast<const uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  std::memmove(m->start + offset, bytes, static_cast<size_t>(length));
  return env.Undefined();
}

Napi::Value Faults(const Napi::CallbackInfo& info) {
  Mapping* m = MappingOf(info[0]);
  if (m == nullptr) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), static_cast<double>(m->FaultCount()));
}

Napi::Value Unmap(const Napi::CallbackInfo& info) {
  Mapping* m = MappingOf(info[0]);
  if (m == nullptr) return info.Env().Undefined();
  m->Unmap(info.Env());
  return info.Env().Undefined();
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Map, "mmap"));
  exports.Set("mappingView", Napi::Function::New(env, View, "mappingView"));
  exports.Set("mappingRead", Napi::Function::New(env, Read, "mappingRead"));
  exports.Set("mappingWrite", Napi::Function::New(env, Write, "mappingWrite"));
  exports.Set("mappingFaults", Napi::Function::New(env, Faults, "mappingFaults"));
  exports.Set("munmap", Napi::Function::New(env, Unmap, "munmap"));
}

}  // namespace emu
