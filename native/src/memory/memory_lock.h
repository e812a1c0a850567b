// The quiesce point between the JS thread and the data plane's workers.
//
// Workers hold the memory lock shared while they touch guest memory (one burst of one NIC at a time);
// the JS thread takes it exclusively around what could pull memory from under them: a
// GuestMemoryTable's ranges changing (DMA_MAP, DMA_UNMAP, a client gone) and a Mapping's munmap.
// Taking it exclusively is the quiesce handshake: it waits until no worker is inside a burst (their
// release is the acknowledgement), and no worker starts one until the change is done. The lock
// prefers writers, so a busy worker cannot hold off an unmap; a burst is short (at most a few dozen
// frames), so the JS thread waits microseconds.
//
// The JS thread never takes it shared: it is the only writer, so its own reads cannot race a change.
#pragma once

namespace emu {
namespace memory_lock {

void LockShared();
void UnlockShared();
void LockExclusive();
void UnlockExclusive();

class Shared {
 public:
  Shared() { LockShared(); }
  ~Shared() { UnlockShared(); }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
};

class Exclusive {
 public:
  Exclusive() { LockExclusive(); }
  ~Exclusive() { UnlockExclusive(); }
  Exclusive(const Exclusive&) = delete;
  Exclusive& operator=(const Exclusive&) = delete;
};

}  // namespace memory_lock
}  // namespace emu
