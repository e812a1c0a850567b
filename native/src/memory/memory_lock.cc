#include "memory/memory_lock.h"

#include <uv.h>

#include "base/lock_order.h"

namespace emu {
namespace memory_lock {
namespace {

// A writer-preferring shared lock from libuv's mutex and condition variable (libuv's rwlock prefers
// readers; glibc's own kinds would raise the prebuild's glibc floor).
struct Lock {
  uv_mutex_t mutex;
  uv_cond_t cond;
  int readers = 0;
  int writers_waiting = 0;
  bool writer = false;

  Lock() {
    uv_mutex_init(&mutex);
    uv_cond_init(&cond);
  }
};

// Process-wide and never destroyed: workers of every environment share it.
Lock& L() {
  static Lock* lock = new Lock();
  return *lock;
}

}  // namespace

void LockShared() {
  lock_order::Acquired(lock_order::kMemory);
  Lock& l = L();
  uv_mutex_lock(&l.mutex);
  while (l.writer || l.writers_waiting > 0) uv_cond_wait(&l.cond, &l.mutex);
  l.readers++;
  uv_mutex_unlock(&l.mutex);
}

void UnlockShared() {
  Lock& l = L();
  uv_mutex_lock(&l.mutex);
  if (--l.readers == 0) uv_cond_broadcast(&l.cond);
  uv_mutex_unlock(&l.mutex);
  lock_order::Released(lock_order::kMemory);
}

void LockExclusive() {
  lock_order::Acquired(lock_order::kMemory);
  Lock& l = L();
  uv_mutex_lock(&l.mutex);
  l.writers_waiting++;
  while (l.writer || l.readers > 0) uv_cond_wait(&l.cond, &l.mutex);
  l.writers_waiting--;
  l.writer = true;
  uv_mutex_unlock(&l.mutex);
}

void UnlockExclusive() {
  Lock& l = L();
  uv_mutex_lock(&l.mutex);
  l.writer = false;
  uv_cond_broadcast(&l.cond);
  uv_mutex_unlock(&l.mutex);
  lock_order::Released(lock_order::kMemory);
}

}  // namespace memory_lock
}  // namespace emu
