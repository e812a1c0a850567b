// A libuv mutex held for a scope: released on every way out, an exception's included.
#pragma once

#include <uv.h>

namespace emu {

class UvLock {
 public:
  explicit UvLock(uv_mutex_t* m) : m_(m) { uv_mutex_lock(m_); }
  ~UvLock() { uv_mutex_unlock(m_); }
  UvLock(const UvLock&) = delete;
  UvLock& operator=(const UvLock&) = delete;

 private:
  uv_mutex_t* m_;
};

}  // namespace emu
