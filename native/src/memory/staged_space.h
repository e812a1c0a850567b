// StagedSpace: guest memory that only DMA messages reach (fd-less RAM), as ring code sees it, so the
// ring rules exist once (iavf_ring_core.h) whatever memory is behind a ring.
//
// Over the table (`under`), it answers lookups the table calls indirect from windows of guest memory
// the caller fetched with DMA_READ and added. A lookup no window holds is remembered as the need and
// fails (kIndirect): the walk stops there with nothing of its packet done, the caller fetches the need,
// adds it and calls the walk again. Every store the walk makes into a window is logged, in program
// order, for the caller to carry out with DMA_WRITE in that order (a descriptor's qword1 after the rest,
// as the walk stores it). A lookup for writing alone (an RX buffer) gets a fresh window without a fetch.
//
// Windows are a cache of guest memory, valid for one pass of the caller over the part of a ring the
// device owns (the guest does not write there until the device hands it back): the caller makes a
// new StagedSpace per pass. Its memory is bounded: a window is at most kMaxWindow bytes, and adding
// one past kMaxBytes (or kMaxWindows) held first forgets the rest (the walk asks again for what it still needs).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "memory/dma_space.h"

namespace emu {

class StagedSpace : public DmaSpace {
 public:
  static constexpr uint64_t kMaxWindow = 1 << 20;
  static constexpr uint64_t kMaxBytes = 8 << 20;
  static constexpr size_t kMaxWindows = 4096;

  struct Range {
    uint64_t iova = 0;
    uint64_t length = 0;
  };
  struct Write {
    uint64_t iova;
    std::vector<uint8_t> bytes;
  };

  StagedSpace() : DmaSpace(true) {}

  // Before each walk: the table it looks through, the need and the log cleared (the caller took them),
  // windows made for writing alone dropped (their stores were logged).
  void Begin(const DmaSpace* under);
  Hit Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const override;

  // A fetched window: `bytes` (length of them), or nullptr when the fetch failed (the range then reads
  // as kMiss: the walk counts it as a bad address). False for an empty window or one over kMaxWindow.
  bool Add(uint64_t iova, const uint8_t* bytes, uint64_t length);
  // The last range a lookup could not find: the one the walk stopped for, when it stopped for one (a
  // walk first asks for its whole ring, which a stage over fd-less RAM never holds, then run by run).
  const Range* Need() const { return need_.length > 0 ? &need_ : nullptr; }
  // The stores of the last walk, oldest first; the log is emptied.
  std::vector<Write> TakeWrites() { return std::move(writes_); }
  uint64_t Bytes() const { return bytes_; }

 private:
  struct Window {
    uint64_t iova;
    uint64_t size;
    std::vector<uint8_t> data;  // size bytes; none when the fetch failed
    bool fetched;               // false: made for writing alone (reads never see it)
    bool failed;                // the fetch failed
    bool Holds(uint64_t at, uint64_t length) const {
      return at >= iova && length <= size && at - iova <= size - length;
    }
  };

  void Log(const uint8_t* at, size_t length) const override;
  Window* Make(uint64_t iova, uint64_t length, bool fetched, bool failed) const;

  const DmaSpace* under_ = nullptr;
  // Newest last; lookups go newest first. Mutable: a lookup for writing makes a window.
  mutable std::vector<std::unique_ptr<Window>> windows_;
  mutable Range need_;
  mutable std::vector<Write> writes_;
  mutable uint64_t bytes_ = 0;
};

}  // namespace emu
