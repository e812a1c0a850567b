// A libuv mutex held for a scope, in the lock order (lock_order.h): released on every way out, an
// exception's included.
#pragma once

#include <uv.h>

#include "base/lock_order.h"

namespace emu {

class UvLock {
 public:
  UvLock(uv_mutex_t* m, lock_order::Rank rank) : m_(m), rank_(rank) {
    lock_order::Acquired(rank_);
    uv_mutex_lock(m_);
  }
  ~UvLock() {
    uv_mutex_unlock(m_);
    lock_order::Released(rank_);
  }
  UvLock(const UvLock&) = delete;
  UvLock& operator=(const UvLock&) = delete;

 private:
  uv_mutex_t* m_;
  lock_order::Rank rank_;
};

}  // namespace emu
