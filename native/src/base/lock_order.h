// The lock order of emu's native threads, once. A thread may take a lock only while every lock it
// holds has a lower rank; so no two threads can ever wait for each other (docs/architecture.md,
// "Locks"). Built with EMU_LOCK_ORDER_CHECKS (the sanitizer build, scripts/test-sanitizers.sh), every
// acquisition is checked against the locks the thread holds and a violation aborts with both names;
// otherwise the checks compile to nothing.
//
// No lock here is held across a system call on a file a client controls (irq_writer.h).
#pragma once

#include <cstdint>
#include <mutex>

namespace emu {
namespace lock_order {

enum Rank : uint8_t {
  kPlane = 10,       // PlaneCore: binding switches to workers (JS thread)
  kWorker = 20,      // a worker's list of NICs and its sleep
  kSwitch = 30,      // a switch and its NICs (or a NIC not on a switch: its own)
  kMemory = 40,      // memory_lock, shared (a burst) or exclusive (a change to guest memory)
  kConnection = 50,  // a vfio-user connection's state (TrapChannel's Core)
  kVectors = 60,     // a VF's interrupt vectors (iavf_vectors.h)
  kIrqTimer = 70,    // the interrupt timer's deadlines (a throttled cause schedules under kVectors)
  kIrqLines = 80,    // a device's interrupt lines (a trigger, under kVectors or alone)
  kIrqWriter = 90,   // a device's interrupt writer's queue (a trigger queues under kIrqLines)
  kLeaf = 100,       // locks under which nothing else is taken: the socket thread's channel map, the
                     // SIGBUS guard's registry, the stall detector's, a writer's wake-up
};

#ifdef EMU_LOCK_ORDER_CHECKS
// Before taking a lock of `rank` (a violation aborts, naming both ranks), and after letting it go.
void Acquired(Rank rank);
void Released(Rank rank);
#else
inline void Acquired(Rank) {}
inline void Released(Rank) {}
#endif

// A std::mutex (or any BasicLockable) held for a scope, in the order above.
template <typename Mutex>
class Guard {
 public:
  Guard(Mutex& m, Rank rank) : m_(m), rank_(rank) {
    Acquired(rank);
    m_.lock();
  }
  ~Guard() {
    m_.unlock();
    Released(rank_);
  }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  Mutex& m_;
  Rank rank_;
};

// A std::unique_lock in the order above, for condition variables (wait on held()); unlock() and
// lock() around work done without it.
template <typename Mutex>
class UniqueGuard {
 public:
  UniqueGuard(Mutex& m, Rank rank) : rank_(rank) {
    Acquired(rank_);
    lock_ = std::unique_lock<Mutex>(m);
  }
  ~UniqueGuard() {
    if (lock_.owns_lock()) {
      lock_.unlock();
      Released(rank_);
    }
  }
  UniqueGuard(const UniqueGuard&) = delete;
  UniqueGuard& operator=(const UniqueGuard&) = delete;

  void unlock() {
    lock_.unlock();
    Released(rank_);
  }
  void lock() {
    Acquired(rank_);
    lock_.lock();
  }
  std::unique_lock<Mutex>& held() { return lock_; }

 private:
  Rank rank_;
  std::unique_lock<Mutex> lock_;
};

}  // namespace lock_order
}  // namespace emu
