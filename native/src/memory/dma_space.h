// DmaSpace: how ring code reaches guest memory, without Node-API, so the same code runs on the JS
// thread, in the data plane's worker threads and in a plain C++ fuzzer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace emu {

enum class Hit {
  kOk,        // *out is the host address of iova
  kMiss,      // in no range (or crossing ranges), or DMA disabled
  kIndirect,  // in a range this caller cannot reach directly (only DMA messages, or JS-owned memory)
  kDenied,    // in a direct range without the access asked for
};
// Hit by name, as TypeScript sees it (lib/iavf-rings.ts's GuestLookup).
inline constexpr const char* kHitNames[] = {"ok", "miss", "indirect", "denied"};
static_assert(sizeof(kHitNames) / sizeof(kHitNames[0]) == static_cast<int>(Hit::kDenied) + 1);

// What the caller will do with the bytes it looks up. kWrite alone promises not to read them (an RX
// buffer), so a space that stages guest memory need not fetch them first (staged_space.h).
enum class Access { kRead, kWrite, kReadWrite };

// Whether a range with these permissions allows the access.
inline bool Allows(Access access, bool readable, bool writable) {
  return (access == Access::kWrite || readable) && (access == Access::kRead || writable);
}

class DmaSpace {
 public:
  virtual ~DmaSpace() = default;
  // [iova, iova + length) wholly inside one range with the access asked for.
  virtual Hit Find(uint64_t iova, uint64_t length, Access access, uint8_t** out) const = 0;

  // Ring code calls this after every store into memory Find gave it, in program order: a space that
  // stages guest memory (StagedSpace) logs the store for the DMA writes that carry it to the guest; for
  // every other space it is one predictable branch.
  void Stored(const uint8_t* at, size_t length) const {
    if (__builtin_expect(staged_, false)) Log(at, length);
  }

 protected:
  explicit DmaSpace(bool staged = false) : staged_(staged) {}
  virtual void Log(const uint8_t*, size_t) const {}

 private:
  const bool staged_;
};

}  // namespace emu
