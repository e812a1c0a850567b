// iavf interrupt vectors as an AVF has them, for every thread that raises or re-arms one: the data
// plane's worker, the socket thread (a VFINT_DYN_CTLN1 write), the interrupt timer and JavaScript.
//
// One dynamic-control register per MSI-X vector (VFINT_DYN_CTL01 for the misc vector 0,
// VFINT_DYN_CTLN1(v - 1) for queue vector v): INTENA arms the vector, and hardware clears it when the
// vector fires (automask). A cause that arrives while the vector is not armed stays pending and fires
// when the driver re-arms it, as Linux's NAPI re-enable relies on; WB_ON_ITR without INTENA
// (iavf_enable_wb_on_itr) raises nothing, and write-backs here are immediate anyway. SWINT_TRIG with
// INTENA fires at once (iavf_force_wb); CLEARPBA clears the MSI-X pending bit, which the VMM keeps, not a
// cause held here (DPDK re-arms with INTENA | CLEARPBA and expects what came meanwhile to fire).
//
// Throttling (ITR): each vector has three interval registers (index 0-2, in 2 us units; VFINT_ITRN1 /
// VFINT_ITR01, or the INTERVAL field of a DYN_CTL write naming an index). A cause with ITR index i does
// not fire the vector sooner than interval i after its last interrupt: it waits, pending, and the
// interrupt timer thread fires it when the interval is over. Index 3 (ITR_NONE) is never throttled.
// Queue vectors' VFINT_ITRN1 live in the shared tail page when there is one (the guest writes them
// there, untrapped); the others here.
//
// Sources: Intel Ethernet Adaptive Virtual Function specification (VFINT_DYN_CTLN1, VFINT_ITRN1);
// Linux 6.12 drivers/net/ethernet/intel/iavf/iavf_txrx.c (iavf_update_enable_itr, iavf_force_wb).
//
// Plain C++ (no Node-API): it links into native tests and fuzzers as it is.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/steady_clock.h"
#include "irq/irq_lines.h"

namespace emu {
namespace iavf {

// DYN_CTL fields (Linux iavf_register.h, IAVF_VFINT_DYN_CTLN1_*).
constexpr uint32_t kIntena = 1u << 0;
constexpr uint32_t kClearPba = 1u << 1;
constexpr uint32_t kSwintTrig = 1u << 2;
constexpr uint32_t kItrIndexShift = 3;
constexpr uint32_t kIntervalShift = 5;
constexpr uint32_t kItrNone = 3;
constexpr uint64_t kItrUnitNs = 2000;
// BAR0: VFINT_ITRN1(i, n) = 0x2800 + 0x40 * i + 4 * n (in the tail page), VFINT_DYN_CTLN1(n) =
// 0x3800 + 4 * n (n = vector - 1).
constexpr size_t kItrn1Offset = 0x2800;
constexpr size_t kItrn1Stride = 0x40;
constexpr uint64_t kDynCtln1Offset = 0x3800;
constexpr uint32_t kDynCtln1Count = 64;

class Vectors : public std::enable_shared_from_this<Vectors> {
 public:
  // page: the shared tail page, mapped read-write and unmapped here at destruction (nullptr: none);
  // manual: time moves only by Advance() (tests), else the steady clock and the interrupt timer.
  Vectors(uint32_t count, void* page, size_t page_bytes, bool manual);
  ~Vectors();
  Vectors(const Vectors&) = delete;
  Vectors& operator=(const Vectors&) = delete;

  uint32_t count() const { return static_cast<uint32_t>(v_.size()); }
  void SetLines(std::shared_ptr<IrqLines> lines);

  uint32_t Read(uint32_t v) const;
  // A driver write of a DYN_CTL register.
  void Write(uint32_t v, uint32_t value);
  uint32_t ReadItr(uint32_t v, uint32_t index) const;
  void WriteItr(uint32_t v, uint32_t index, uint32_t interval);
  // A cause for vector v with ITR index `itr`: fires when armed and its interval allows.
  void Raise(uint32_t v, uint32_t itr);
  // Power-on: control, pending causes, intervals, timers.
  void Reset();
  // Fires the throttled causes whose interval is over (the interrupt timer calls it at their deadlines).
  void Expire();
  void Advance(uint64_t ns);

  struct Counts {
    std::vector<double> fired;      // interrupts delivered, per vector
    std::vector<double> throttled;  // causes that waited for their interval, per vector
  };
  Counts counts() const;

 private:
  struct Vector {
    uint32_t ctl = 0;
    bool pending = false;
    uint32_t pending_itr = kItrNone;
    uint16_t itr[3] = {};  // when not in the page
    bool has_fired = false;
    uint64_t last_fire = 0;
    uint64_t due = 0;  // a timer is set for this deadline (0: none)
    double fired = 0;
    double throttled = 0;
  };

  uint64_t Now() const;
  uint32_t* PageItr(uint32_t v, uint32_t index) const;
  uint32_t ItrLocked(uint32_t v, uint32_t index) const;
  void SetItrLocked(uint32_t v, uint32_t index, uint32_t interval);
  uint64_t IntervalNs(uint32_t v, uint32_t index) const;
  void TryFireLocked(uint32_t v);
  void FireLocked(uint32_t v);
  void ResetLocked();

  mutable std::mutex mutex_;
  std::vector<Vector> v_;
  uint32_t* page_;
  size_t page_bytes_;
  bool manual_;
  uint64_t manual_now_ = 0;
  std::shared_ptr<IrqLines> lines_;
};

// The process's interrupt timer: one thread that fires throttled causes at their deadlines, running
// while any Vectors with a real clock is in use (Retain/Release, from any JS thread: each started
// thread has a generation, so one still being joined by Release never runs on beside a new one).
class IrqTimer {
 public:
  static IrqTimer& Get();
  void Retain();
  void Release();
  // False when the deadline could not be recorded (no memory).
  bool Schedule(std::weak_ptr<Vectors> vectors, uint64_t deadline_ns);

 private:
  IrqTimer() = default;
  void Loop(uint64_t generation);

  std::mutex mutex_;
  std::condition_variable cond_;
  std::multimap<uint64_t, std::weak_ptr<Vectors>> due_;
  size_t users_ = 0;
  uint64_t generation_ = 0;  // the running thread's; 0: none should run
  uint64_t next_generation_ = 0;
  std::thread thread_;
};


}  // namespace iavf
}  // namespace emu
