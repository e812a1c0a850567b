// Fault injection: named points in native code where a test makes the next pass throw
// std::bad_alloc, as an allocation would in a process at its memory or mapping limits, to prove that
// the exception is contained where contain.h says; and one where the next pass pauses, to prove what
// waits for a worker's burst in flight. Disarmed, a point costs one relaxed load.
#pragma once

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
  kWorkerHold = 4,    // a data plane worker pauses kHoldMs inside a burst, before writing a frame into an RX ring
  kPoints = 5,
};

constexpr uint32_t kHoldMs = 300;

extern std::atomic<uint32_t> armed;  // bit p: the next pass of point p throws

inline void Maybe(Point p) {
  const uint32_t bit = 1u << p;
  if ((armed.load(std::memory_order_relaxed) & bit) && (armed.fetch_and(~bit, std::memory_order_acq_rel) & bit)) {
    throw std::bad_alloc();
  }
}

// Pauses kHoldMs at point p, once, if armed.
void Hold(Point p);

}  // namespace fault
}  // namespace emu
