// Where a C++ exception stops in native code.
//
// Any allocation can throw std::bad_alloc (a process near its memory or mapping limits), and an
// exception that leaves native code ends the process with every guest's device. So each entry into
// native code catches everything at its edge:
// - N-API calls: node-addon-api's wrapper (NODE_ADDON_API_CPP_EXCEPTIONS_ALL, binding.gyp) turns any
//   exception into a JavaScript Error for that call;
// - native threads (the data plane's workers, the socket thread, the interrupt timer) and libuv
//   callbacks: each unit of work runs through Contained(), which turns an exception into a failure
//   of that unit (one NIC's burst, one connection) that the owner reports, and the thread goes on.
// Locks are scoped (UvLock, std::lock_guard), so unwinding releases them.
#pragma once

#include <cstdio>
#include <exception>
#include <new>

namespace emu {

// Runs f(); returns false, with the exception described on stderr, if it threw.
template <typename F>
bool Contained(const char* where, F&& f) noexcept {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "emu native: %s: %s (contained)\n", where, e.what());
  } catch (...) {
    std::fprintf(stderr, "emu native: %s: an exception (contained)\n", where);
  }
  return false;
}

}  // namespace emu
