// The stall detector: every native thread, and the JavaScript event loop, says when it starts and ends
// a unit of work; a monitor thread reports one that has been at the same unit for longer than a
// threshold (1 s by default), naming the thread, what it was doing and for whom, so the next hang is
// diagnosed from its log. Native threads' stalls reach JavaScript (which logs and counts them); a
// stall of the event loop itself is written to stderr by the monitor at once, since JavaScript cannot,
// and reported to JavaScript again once the loop turns.
//
// A Beat is one thread's: Begin(doing, subject) at the start of a unit of work (`doing`: a static
// string; `subject`: a label id of Label(), 0 for none), End() after. Both are two relaxed atomic
// stores and a clock read: cheap enough for every burst of the data plane.
//
// Plain C++ but for the binding at the end of watchdog.cc.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/steady_clock.h"

namespace emu {
namespace watchdog {

class Beat {
 public:
  explicit Beat(std::string thread);  // registered with the monitor
  ~Beat();
  Beat(const Beat&) = delete;
  Beat& operator=(const Beat&) = delete;

  void Begin(const char* doing, uint64_t subject = 0) {
    doing_.store(doing, std::memory_order_relaxed);
    subject_.store(subject, std::memory_order_relaxed);
    since_.store(SteadyNowNs(), std::memory_order_release);
  }
  void End() { since_.store(0, std::memory_order_release); }

 private:
  friend class Monitor;
  const std::string thread_;
  std::atomic<uint64_t> since_{0};
  std::atomic<const char*> doing_{nullptr};
  std::atomic<uint64_t> subject_{0};
  uint64_t reported_ = 0;  // the `since` of the unit last reported as stalled (the monitor's)
};

// A unit of work for a scope.
class Busy {
 public:
  Busy(Beat* beat, const char* doing, uint64_t subject = 0) : beat_(beat) {
    if (beat_ != nullptr) beat_->Begin(doing, subject);
  }
  ~Busy() {
    if (beat_ != nullptr) beat_->End();
  }
  Busy(const Busy&) = delete;
  Busy& operator=(const Busy&) = delete;

 private:
  Beat* beat_;
};

// Labels for subjects (a device, a connection): an id for a text, until Unlabel. Any thread.
uint64_t Label(const std::string& text);
void Unlabel(uint64_t id);

}  // namespace watchdog
}  // namespace emu
