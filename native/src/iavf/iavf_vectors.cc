// iavf interrupt vectors and the interrupt timer (iavf_vectors.h).
#include "iavf/iavf_vectors.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include <chrono>

#include "base/contain.h"
#include "base/fault_injection.h"
#include "base/lock_order.h"
#include "base/watchdog.h"

namespace emu {
namespace iavf {

Vectors::Vectors(uint32_t count, void* page, size_t page_bytes, bool manual)
    : v_(count), page_(static_cast<uint32_t*>(page)), page_bytes_(page_bytes), manual_(manual) {
  // A manual clock starts well away from 0, so "last interrupt + interval" never wraps below it.
  manual_now_ = 1000000000ull;
}

Vectors::~Vectors() {
  if (page_ != nullptr) munmap(page_, page_bytes_);
}

void Vectors::SetLines(std::shared_ptr<IrqLines> lines) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  lines_ = std::move(lines);
}

uint64_t Vectors::Now() const { return manual_ ? manual_now_ : SteadyNowNs(); }

uint32_t* Vectors::PageItr(uint32_t v, uint32_t index) const {
  if (page_ == nullptr || v == 0) return nullptr;
  const size_t at = kItrn1Offset + kItrn1Stride * index + 4 * (v - 1);
  return at + 4 <= page_bytes_ && 4 * (v - 1) < kItrn1Stride ? page_ + at / 4 : nullptr;
}

uint32_t Vectors::ItrLocked(uint32_t v, uint32_t index) const {
  const uint32_t* word = PageItr(v, index);
  return word != nullptr ? __atomic_load_n(word, __ATOMIC_RELAXED) : v_[v].itr[index];
}

void Vectors::SetItrLocked(uint32_t v, uint32_t index, uint32_t interval) {
  uint32_t* word = PageItr(v, index);
  if (word != nullptr) {
    __atomic_store_n(word, interval & 0xfff, __ATOMIC_RELAXED);
  } else {
    v_[v].itr[index] = static_cast<uint16_t>(interval & 0xfff);
  }
}

uint64_t Vectors::IntervalNs(uint32_t v, uint32_t index) const {
  return index >= kItrNone ? 0 : (ItrLocked(v, index) & 0xfff) * kItrUnitNs;
}

uint32_t Vectors::Read(uint32_t v) const {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  return v < v_.size() ? v_[v].ctl : 0;
}

void Vectors::Write(uint32_t v, uint32_t value) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  if (v >= v_.size()) return;
  // The INTERVAL field updates the ITR register the ITR index names (not ITR_NONE).
  const uint32_t index = (value >> kItrIndexShift) & 3;
  if (index != kItrNone) SetItrLocked(v, index, (value >> kIntervalShift) & 0xfff);
  // SWINT_TRIG and CLEARPBA are actions, not state.
  v_[v].ctl = value & ~(kSwintTrig | kClearPba);
  if (!(value & kIntena)) return;
  if (value & kSwintTrig) {
    FireLocked(v);
  } else if (v_[v].pending) {
    TryFireLocked(v);
  }
}

uint32_t Vectors::ReadItr(uint32_t v, uint32_t index) const {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  return v < v_.size() && index < 3 ? ItrLocked(v, index) : 0;
}

void Vectors::WriteItr(uint32_t v, uint32_t index, uint32_t interval) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  if (v < v_.size() && index < 3) SetItrLocked(v, index, interval);
}

void Vectors::Raise(uint32_t v, uint32_t itr) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  if (v >= v_.size()) return;
  Vector& x = v_[v];
  if (itr > kItrNone) itr = kItrNone;
  // The shortest interval of the causes waiting.
  if (!x.pending || IntervalNs(v, itr) < IntervalNs(v, x.pending_itr)) x.pending_itr = itr;
  x.pending = true;
  if (x.ctl & kIntena) TryFireLocked(v);
}

void Vectors::TryFireLocked(uint32_t v) {
  Vector& x = v_[v];
  const uint64_t now = Now();
  const uint64_t deadline = x.last_fire + IntervalNs(v, x.pending_itr);
  if (!x.has_fired || deadline <= now) {
    FireLocked(v);
    return;
  }
  if (x.due != 0) return;
  x.throttled++;
  x.due = deadline;
  // A timer that cannot be set (no memory) must not hold the cause for ever: it fires unthrottled.
  if (!manual_ && !IrqTimer::Get().Schedule(weak_from_this(), deadline)) FireLocked(v);
}

void Vectors::FireLocked(uint32_t v) {
  Vector& x = v_[v];
  x.due = 0;
  x.pending = false;
  x.pending_itr = kItrNone;
  x.ctl &= ~kIntena;
  x.last_fire = Now();
  x.has_fired = true;
  if (lines_ && lines_->Trigger(v) == IrqLines::kFired) x.fired++;
}

void Vectors::Expire() {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  const uint64_t now = Now();
  for (uint32_t v = 0; v < v_.size(); v++) {
    Vector& x = v_[v];
    if (x.due == 0 || x.due > now) continue;
    x.due = 0;
    if (x.pending && (x.ctl & kIntena)) TryFireLocked(v);
  }
}

void Vectors::Advance(uint64_t ns) {
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
    manual_now_ += ns;
  }
  Expire();
}

void Vectors::Reset() {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  for (uint32_t v = 0; v < v_.size(); v++) {
    const double fired = v_[v].fired, throttled = v_[v].throttled;
    v_[v] = Vector{};
    // Counters run on across resets, as the device's other statistics do.
    v_[v].fired = fired;
    v_[v].throttled = throttled;
    for (uint32_t i = 0; i < 3; i++) SetItrLocked(v, i, 0);
  }
}

Vectors::Counts Vectors::counts() const {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kVectors);
  Counts c;
  for (const Vector& x : v_) {
    c.fired.push_back(x.fired);
    c.throttled.push_back(x.throttled);
  }
  return c;
}

IrqTimer& IrqTimer::Get() {
  static IrqTimer* instance = new IrqTimer();  // never destroyed: vectors may outlive statics
  return *instance;
}

void IrqTimer::Retain() {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqTimer);
  if (users_++ > 0) return;
  const uint64_t generation = ++next_generation_;
  generation_ = generation;
  thread_ = std::thread([this, generation] { Loop(generation); });
}

void IrqTimer::Release() {
  std::thread done;
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqTimer);
    if (users_ == 0 || --users_ > 0) return;
    generation_ = 0;
    due_.clear();
    done.swap(thread_);
  }
  cond_.notify_all();
  if (done.joinable()) done.join();
}

bool IrqTimer::Schedule(std::weak_ptr<Vectors> vectors, uint64_t deadline_ns) {
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqTimer);
    if (users_ == 0) return true;
    const bool earliest = due_.empty() || deadline_ns < due_.begin()->first;
    try {
      due_.emplace(deadline_ns, std::move(vectors));
    } catch (const std::bad_alloc&) {
      return false;
    }
    if (!earliest) return true;
  }
  cond_.notify_all();
  return true;
}

void IrqTimer::Loop(uint64_t generation) {
  // ITR intervals are tens of microseconds: the default 50 us timer slack would double them.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  prctl(PR_SET_NAME, "emu-irq-timer", 0, 0, 0);
  watchdog::Beat beat("emu-irq-timer");
  lock_order::UniqueGuard<std::mutex> lock(mutex_, lock_order::kIrqTimer);
  while (generation_ == generation) {
    if (due_.empty()) {
      cond_.wait(lock.held());
      continue;
    }
    const uint64_t now = SteadyNowNs();
    const uint64_t first = due_.begin()->first;
    if (first > now) {
      cond_.wait_for(lock.held(), std::chrono::nanoseconds(first - now));
      continue;
    }
    std::vector<std::weak_ptr<Vectors>> ready;
    const bool taken = Contained("interrupt timer", [&] {
      fault::Maybe(fault::kIrqTimer);
      while (!due_.empty() && due_.begin()->first <= now) {
        ready.push_back(std::move(due_.begin()->second));
        due_.erase(due_.begin());
      }
    });
    if (!taken && ready.empty() && !due_.empty()) {
      // No memory for the list: what is due fires one at a time, straight from the map.
      std::weak_ptr<Vectors> one = std::move(due_.begin()->second);
      due_.erase(due_.begin());
      lock.unlock();
      if (std::shared_ptr<Vectors> v = one.lock()) v->Expire();
      lock.lock();
      continue;
    }
    // Outside the timer's mutex: Expire takes the vectors' and may schedule again.
    lock.unlock();
    {
      watchdog::Busy busy(&beat, "firing throttled interrupts");
      for (auto& w : ready) {
        if (std::shared_ptr<Vectors> v = w.lock()) v->Expire();
      }
    }
    lock.lock();
  }
}

}  // namespace iavf
}  // namespace emu
