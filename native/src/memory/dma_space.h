// DmaSpace: how ring code reaches guest memory, without Node-API, so the same code runs on the JS
// thread, in the data plane's worker threads and in a plain C++ fuzzer.
#pragma once

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

class DmaSpace {
 public:
  virtual ~DmaSpace() = default;
  // [iova, iova + length) wholly inside one range with the access asked for.
  virtual Hit Find(uint64_t iova, uint64_t length, bool write, uint8_t** out) const = 0;
};

}  // namespace emu
