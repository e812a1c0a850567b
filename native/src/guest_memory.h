// GuestMemoryTable: the guest's DMA ranges as the native data path sees them. A range is either
// direct (host memory behind an ArrayBuffer the table holds on to) or indirect (mapped by the VMM
// without an fd: only DMA messages reach it, so native code must hand the work back to TypeScript).
//
// Every lookup is bounds-checked: [iova, iova + length) must lie wholly inside one range with the
// access asked for; lookups never cross from one range into the next, and 64-bit wrap-around is
// refused. A range whose ArrayBuffer was detached (MappedMemory.unmap: munmap follows) is dropped
// before any lookup, and the table's strong reference keeps a mapping from being garbage-collected
// while it is listed, so a listed direct range is always mapped.
//
// Only the JS thread touches guest memory through a table (every ring operation is synchronous), and
// a DMA_UNMAP runs on the JS thread too: an unmap can never overlap a walk.
#pragma once

#include <napi.h>

#include <cstdint>
#include <vector>

namespace emu {

class GuestMemoryTable : public Napi::ObjectWrap<GuestMemoryTable> {
 public:
  enum class Hit {
    kOk,        // *out is the host address of iova
    kMiss,      // in no range (or crossing ranges)
    kIndirect,  // in a range reached only by DMA messages
    kDenied,    // in a direct range without the access asked for
  };

  static Napi::Function Define(Napi::Env env);
  explicit GuestMemoryTable(const Napi::CallbackInfo& info);

  // Drops ranges whose buffers were detached. Call on the JS thread before a batch of lookups.
  void Prune();
  Hit Find(uint64_t iova, uint64_t length, bool write, uint8_t** out) const;

 private:
  struct Range {
    uint64_t iova;
    uint64_t size;
    uint8_t* host;  // nullptr for an indirect range
    bool readable;
    bool writable;
    Napi::Reference<Napi::ArrayBuffer> keep;  // empty for an indirect range
  };

  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value AddIndirect(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Clear(const Napi::CallbackInfo& info);
  Napi::Value List(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  // Ring operations (iavf_rings.cc).
  Napi::Value TxRing(const Napi::CallbackInfo& info);
  Napi::Value RxRing(const Napi::CallbackInfo& info);
  Napi::Value GuestPostTx(const Napi::CallbackInfo& info);
  Napi::Value GuestPostRx(const Napi::CallbackInfo& info);

  bool Insert(Napi::Env env, Range range);

  std::vector<Range> ranges_;  // sorted by iova, never overlapping
};

}  // namespace emu
