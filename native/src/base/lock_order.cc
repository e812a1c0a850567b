// The lock order's checks (lock_order.h), in a build with EMU_LOCK_ORDER_CHECKS.
#include "base/lock_order.h"

#ifdef EMU_LOCK_ORDER_CHECKS

#include <cstdio>
#include <cstdlib>

namespace emu {
namespace lock_order {
namespace {

constexpr int kMaxHeld = 16;

struct Held {
  Rank ranks[kMaxHeld];
  int n = 0;
};

thread_local Held held;

const char* Name(Rank r) {
  switch (r) {
    case kPlane: return "the data plane's";
    case kWorker: return "a worker's";
    case kSwitch: return "a switch's";
    case kMemory: return "the memory lock";
    case kConnection: return "a connection's";
    case kVectors: return "a VF's vectors'";
    case kIrqTimer: return "the interrupt timer's";
    case kIrqLines: return "interrupt lines'";
    case kIrqWriter: return "an interrupt writer's";
    case kLeaf: return "a leaf lock";
  }
  return "?";
}

}  // namespace

void Acquired(Rank rank) {
  for (int i = 0; i < held.n; i++) {
    if (held.ranks[i] >= rank) {
      std::fprintf(stderr, "emu native: lock order violated: %s (rank %d) taken while holding %s (rank %d)\n",
                   Name(rank), rank, Name(held.ranks[i]), held.ranks[i]);
      std::abort();
    }
  }
  if (held.n == kMaxHeld) {
    std::fprintf(stderr, "emu native: lock order: more than %d locks held\n", kMaxHeld);
    std::abort();
  }
  held.ranks[held.n++] = rank;
}

void Released(Rank rank) {
  for (int i = held.n - 1; i >= 0; i--) {
    if (held.ranks[i] != rank) continue;
    for (int j = i; j + 1 < held.n; j++) held.ranks[j] = held.ranks[j + 1];
    held.n--;
    return;
  }
}

}  // namespace lock_order
}  // namespace emu

#endif  // EMU_LOCK_ORDER_CHECKS
