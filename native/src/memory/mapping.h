// Mapping: one mmap of an fd (guest memory shared by the VMM, a region's memfd), shared by the JS
// MappedMemory that made it, the ArrayBuffers it handed out, and the GuestMemoryTables holding it.
//
// Its size has no ArrayBuffer limit: JavaScript reaches it through windows (view), copies (read,
// write) and native code. Unmap() detaches every window still alive before munmap, so no JS-visible
// view ever spans unmapped memory, and a table checks `unmapped` before any access. Every owner holds
// a reference; all of them live on the JS thread that made the mapping, so a plain count suffices.
#pragma once

#include <napi.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "memory/guard.h"
#include "memory/memory_lock.h"

namespace emu {

struct Mapping {
  void* base = nullptr;    // page-aligned start handed to munmap
  size_t size = 0;         // includes the leading bytes below an unaligned offset
  uint8_t* start = nullptr;  // byte 0 of what was asked for
  size_t length = 0;
  bool writable = false;
  bool unmapped = false;
  int guard_slot = -1;
  const std::atomic<uint64_t>* faults = nullptr;  // the guard's count for this mapping
  int refs = 1;
  std::vector<napi_ref> windows;  // weak references to the ArrayBuffers handed out

  void Ref() { refs++; }

  // Faulted once (its file shrank, or had a hole the filesystem could not fill): the client broke the
  // memory it handed over, and emu stops using it.
  bool Poisoned() const { return faults != nullptr && faults->load(std::memory_order_relaxed) > 0; }
  uint64_t FaultCount() const { return faults == nullptr ? 0 : faults->load(std::memory_order_relaxed); }
  // The last owner gone: unmapped now if nobody did (MappedMemory collected without unmap()).
  static void Release(napi_env env, Mapping* m) {
    if (--m->refs > 0) return;
    m->Unmap(env);
    delete m;
  }

  void Unmap(napi_env env) {
    if (unmapped) return;
    unmapped = true;
    for (napi_ref ref : windows) {
      napi_value value = nullptr;
      if (napi_get_reference_value(env, ref, &value) == napi_ok && value != nullptr) {
        bool detached = false;
        napi_is_detached_arraybuffer(env, value, &detached);
        if (!detached) napi_detach_arraybuffer(env, value);
      }
      napi_delete_reference(env, ref);
    }
    windows.clear();
    // Every worker out of its burst first (one may be reading this memory, under the guard's
    // protection), then out of the guard (once unmapped, the addresses may be someone else's), then
    // unmapped, all before any burst starts again.
    memory_lock::Exclusive quiesce;
    guard::Unregister(guard_slot);
    guard_slot = -1;
    faults = nullptr;
    munmap(base, size);
  }

  // Keeps a weak reference to a window, dropping those already collected now and then.
  void Track(napi_env env, napi_value buffer) {
    if (windows.size() >= 64 && (windows.size() & (windows.size() - 1)) == 0) {
      std::vector<napi_ref> alive;
      for (napi_ref ref : windows) {
        napi_value value = nullptr;
        if (napi_get_reference_value(env, ref, &value) == napi_ok && value != nullptr) {
          alive.push_back(ref);
        } else {
          napi_delete_reference(env, ref);
        }
      }
      windows.swap(alive);
    }
    napi_ref ref;
    if (napi_create_reference(env, buffer, 0, &ref) == napi_ok) windows.push_back(ref);
  }
};

// The Mapping behind a handle from mmap(), or nullptr after throwing a TypeError.
Mapping* MappingOf(Napi::Value handle);

}  // namespace emu
