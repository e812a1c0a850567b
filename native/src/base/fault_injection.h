// Fault injection (header-only, so plain C++ such as the ring core links without the binding): named points in native code where a test makes the next pass throw
// std::bad_alloc, as an allocation would in a process at its memory or mapping limits, to prove that
// the exception is contained where contain.h says; and one where the next pass pauses, to prove what
// waits for a worker's burst in flight. Disarmed, a point costs one relaxed load.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <new>

namespace emu {
namespace fault {

enum Point : uint32_t {
  kWorkerBurst = 0,   // a data plane worker, inside one NIC's burst
  kConnectionRead = 1,  // a vfio-user connection's read (the socket thread's or the JS thread's)
  kNapiCall = 2,      // an N-API call (IavfNic.configure)
  kIrqTimer = 3,      // the interrupt timer, firing a throttled cause
  kWorkerHold = 4,    // a frame's RX write pauses kHoldMs between looking its buffers up and writing them
  kPoints = 5,
};

constexpr uint32_t kHoldMs = 300;

inline std::atomic<uint32_t> armed{0};  // bit p: the next pass of point p throws (or pauses)

inline void Maybe(Point p) {
  const uint32_t bit = 1u << p;
  if ((armed.load(std::memory_order_relaxed) & bit) && (armed.fetch_and(~bit, std::memory_order_acq_rel) & bit)) {
    throw std::bad_alloc();
  }
}

// Pauses kHoldMs at point p, once, if armed.
inline void Hold(Point p) {
  const uint32_t bit = 1u << p;
  if ((armed.load(std::memory_order_relaxed) & bit) && (armed.fetch_and(~bit, std::memory_order_acq_rel) & bit)) {
    struct timespec t = {0, static_cast<long>(kHoldMs) * 1000000L};
    nanosleep(&t, nullptr);
  }
}

}  // namespace fault
}  // namespace emu
