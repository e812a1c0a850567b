// GuestMemoryTable: the guest's DMA ranges as native code sees them, by IOVA. A range is direct (host
// memory: a Mapping of the VMM's fd, or an ArrayBuffer for tests and benchmarks) or indirect (mapped
// by the VMM without an fd: only DMA messages reach it, so native code hands such work back to
// TypeScript). vfio-user's DmaTable keeps one table per client, updated at each DMA_MAP and
// DMA_UNMAP; map, unmap and lookup are O(log n) (a std::map by IOVA), so a guest with a vIOMMU and
// tens of thousands of mappings costs no more per access than one with two.
//
// Every lookup is bounds-checked: [iova, iova + length) must lie wholly inside one range with the
// access asked for; lookups never cross from one range into the next, and 64-bit wrap-around is
// refused. While DMA is disabled (the PCI command register's Bus Master Enable is clear, or the client
// went away) every lookup misses. A range whose memory was unmapped (Mapping::unmapped, or a detached
// ArrayBuffer) is never reached, nor one whose memory faulted (Mapping::Poisoned: its file shrank); the
// table's reference keeps the memory's owner alive while listed.
//
// The JS thread changes a table (and runs its own ring operations synchronously); the data plane's
// workers look ranges up from their threads, through WorkerSpace, inside memory_lock::Shared, and
// every change to the ranges (and every munmap) is made inside memory_lock::Exclusive: an unmap can
// never overlap a walk (memory_lock.h).
#pragma once

#include <napi.h>

#include <cstdint>
#include <atomic>
#include <map>

#include "memory/dma_space.h"
#include "memory/mapping.h"

namespace emu {

class GuestMemoryTable : public Napi::ObjectWrap<GuestMemoryTable>, public DmaSpace {
 public:
  using Hit = emu::Hit;

  static Napi::Function Define(Napi::Env env);
  // The table behind a JS object, or nullptr if it is not one.
  static GuestMemoryTable* FromValue(Napi::Value v);
  bool Enabled() const { return enabled_.load(std::memory_order_acquire); }
  explicit GuestMemoryTable(const Napi::CallbackInfo& info);
  ~GuestMemoryTable() override;

  // Drops ArrayBuffer ranges whose buffers were detached. Call on the JS thread before a batch of
  // lookups; it costs nothing unless ArrayBuffer ranges are listed.
  void Prune();
  // Also drops mapping ranges that were unmapped without remove() (O(n): for list and count).
  void PruneAll();
  // kIndirect: a range reached only by DMA messages.
  Hit Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const override;
  // Whether any direct range is an ArrayBuffer (its detachment is seen only on the JS thread).
  bool HasBufferRanges() const { return buffer_ranges_ > 0; }

  // The table as a worker thread may reach it, for one burst (inside memory_lock::Shared, so the
  // ranges cannot change under it): mappings only, an ArrayBuffer's range reading as kIndirect (JS can
  // detach it at any moment, and only the JS thread can tell). It remembers the last range it hit:
  // a burst's descriptors and buffers are mostly in one range of guest RAM. The memory is forgotten
  // when the table's ranges change (its generation moves), so one may serve a NIC for its lifetime.
  class WorkerSpace : public DmaSpace {
   public:
    explicit WorkerSpace(const GuestMemoryTable* table) : table_(table) {}
    Hit Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const override;

   private:
    const GuestMemoryTable* table_;
    mutable uint64_t generation_ = 0;  // the table's, when the range below was looked up
    mutable uint64_t start_ = 0;
    mutable uint64_t size_ = 0;
    mutable uint8_t* host_ = nullptr;
    mutable const Mapping* mapping_ = nullptr;
    mutable bool readable_ = false;
    mutable bool writable_ = false;
  };

 private:
  struct Range {
    uint64_t size;
    uint8_t* host;  // nullptr for an indirect range
    bool readable;
    bool writable;
    Mapping* mapping;                          // a mapping's range: one reference held
    Napi::Reference<Napi::ArrayBuffer> keep;  // an ArrayBuffer's range
  };
  using Ranges = std::map<uint64_t, Range>;

  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value AddMapping(const Napi::CallbackInfo& info);
  Napi::Value AddIndirect(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Clear(const Napi::CallbackInfo& info);
  Napi::Value List(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value FindRange(const Napi::CallbackInfo& info);
  Napi::Value Overlapping(const Napi::CallbackInfo& info);
  Napi::Value Within(const Napi::CallbackInfo& info);
  Napi::Value SetEnabled(const Napi::CallbackInfo& info);
  Napi::Value GetEnabled(const Napi::CallbackInfo& info);
  Napi::Value GetCount(const Napi::CallbackInfo& info);
  // Ring operations (iavf_rings.cc).
  Napi::Value TxRing(const Napi::CallbackInfo& info);
  Napi::Value RxRing(const Napi::CallbackInfo& info);
  Napi::Value GuestPostTx(const Napi::CallbackInfo& info);
  Napi::Value GuestPostRx(const Napi::CallbackInfo& info);
  Napi::Value GuestReapTx(const Napi::CallbackInfo& info);
  Napi::Value GuestReapRx(const Napi::CallbackInfo& info);

  // The one range holding [iova, iova + length) whatever its state and access, or end().
  Ranges::const_iterator Holding(uint64_t iova, uint64_t length) const;
  // The first range overlapping [iova, iova + size), or end().
  Ranges::const_iterator FirstOverlap(uint64_t iova, uint64_t size) const;
  bool Insert(Napi::Env env, uint64_t iova, Range range);
  void Erase(Ranges::iterator it);
  // Unmapped without remove(): never reached, dropped by PruneAll.
  bool Gone(const Range& r) const;
  // Reachable now: not gone, and its memory not poisoned by a fault (the range stays listed).
  bool Usable(const Range& r) const;

  static Napi::FunctionReference* constructor_;
  Ranges ranges_;
  std::atomic<uint64_t> generation_{1};  // moves at every change of ranges_
  size_t buffer_ranges_ = 0;  // ranges backed by an ArrayBuffer (they need Prune)
  std::atomic<bool> enabled_{true};
  napi_env env_;
};

}  // namespace emu
