// The data plane's worker threads: each polls the NICs of the switches bound to it, a NIC's turn at a
// time, and sleeps adaptively when idle (as the DoorbellWatcher does). See core.h.
#include <sys/prctl.h>

#include <string>

#include "base/contain.h"
#include "base/fault_injection.h"
#include "base/lock_order.h"
#include "base/uv_lock.h"
#include "base/watchdog.h"
#include "dataplane/core.h"
#include "memory/memory_lock.h"

namespace emu {
namespace dataplane {
namespace {

void WorkerLoop(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  const PlaneCore& p = *w->plane;
  // Sleeps of a few microseconds need a timer slack below the default 50 us.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  prctl(PR_SET_NAME, "emu-dataplane", 0, 0, 0);
  watchdog::Beat beat("emu-dataplane-" + std::to_string(w->index));
  const uint64_t min_ns = static_cast<uint64_t>(p.min_sleep_us) * 1000;
  const uint64_t max_ns = static_cast<uint64_t>(p.max_sleep_us) * 1000;
  const uint64_t warm_cap_ns = std::min(std::max(static_cast<uint64_t>(p.warm_sleep_us) * 1000, min_ns), max_ns);
  const uint64_t warm_ns = static_cast<uint64_t>(p.warm_ms) * 1000000;
  uint64_t sleep_ns = min_ns;
  uint64_t last_work = uv_hrtime();
  int64_t quiet = 0;
  lock_order::Acquired(lock_order::kWorker);
  uv_mutex_lock(&w->mutex);
  while (!w->stop) {
    uint64_t produced = 0;
    // One NIC's burst at a time, under its switch's mutex; the worker's own mutex is released in
    // between so the JS thread can change the list.
    for (size_t i = 0; i < w->nics.size() && !w->stop; i++) {
      NicCore* nic = w->nics[i];
      {
        watchdog::Busy busy(&beat, "a NIC's turn (its switch's lock, the memory lock)", nic->label);
        UvLock lock(&nic->sw->mutex, lock_order::kSwitch);
        memory_lock::Shared quiesce;
        const bool ok = Contained("data plane burst", [&] {
          fault::Maybe(fault::kWorkerBurst);
          produced += PollNic(nic, p.burst);
        });
        if (!ok) {
          // The burst stopped part way (an allocation failed): JavaScript goes on from the heads the
          // shared state holds, as for memory the worker cannot reach; the other NICs are untouched.
          nic->native = false;
          nic->flags.fetch_or(kEventSlow | kEventFault, std::memory_order_relaxed);
          nic->sw->Wake();
        }
        RaiseInterrupts(nic->sw.get());
      }
      uv_mutex_unlock(&w->mutex);  // the JS thread may change the list here (still in the order)
      uv_mutex_lock(&w->mutex);
    }
    w->polls++;
    w->frames += static_cast<double>(produced);
    if (produced > 0) {
      quiet = 0;
      sleep_ns = min_ns;
      last_work = uv_hrtime();
      continue;  // busy: go on at once
    }
    if (++quiet > p.busy_polls) {
      const uint64_t cap = uv_hrtime() - last_work < warm_ns ? warm_cap_ns : max_ns;
      sleep_ns = std::min(sleep_ns * 2, cap);
    }
    if (!w->stop) uv_cond_timedwait(&w->cond, &w->mutex, sleep_ns);
  }
  uv_mutex_unlock(&w->mutex);
  lock_order::Released(lock_order::kWorker);
}

}  // namespace

void StopWorker(Worker* w) {
  {
    UvLock lock(&w->mutex, lock_order::kWorker);
    if (!w->running) return;
    w->stop = true;
    uv_cond_signal(&w->cond);
  }
  uv_thread_join(&w->thread);
  UvLock lock(&w->mutex, lock_order::kWorker);
  w->running = false;
  w->stop = false;
}

void StopWorkers(PlaneCore* p) {
  for (auto& w : p->workers) StopWorker(w.get());
}

// An attached NIC joins the list of its switch's worker (a switch is bound to the least loaded worker
// when the first of its NICs starts, so frames between NICs of one switch stay on one thread); the
// worker starts with its first NIC. Returns 0, or uv_thread_create's error (the NIC is not listed).
int ListNic(PlaneCore* p, NicCore* nic) {
  if (nic->started || !nic->Attached()) return 0;
  Worker* w;
  {
    UvLock bind(&p->mutex, lock_order::kPlane);
    SwitchCore* sw = nic->sw.get();
    if (sw->worker == nullptr) {
      Worker* least = p->workers.front().get();
      for (auto& x : p->workers) {
        if (x->switches < least->switches) least = x.get();
      }
      sw->worker = least;
      least->switches++;
    }
    w = sw->worker;
  }
  bool start;
  {
    UvLock lock(&w->mutex, lock_order::kWorker);
    nic->started = true;
    nic->worker = w;
    w->nics.push_back(nic);
    uv_cond_signal(&w->cond);
    start = !w->running;
    if (start) w->running = true;
  }
  if (!start) return 0;
  const int r = uv_thread_create(&w->thread, WorkerLoop, w);
  if (r < 0) {
    {
      UvLock lock(&w->mutex, lock_order::kWorker);
      w->running = false;
    }
    UnlistNic(nic);
    return r;
  }
  return 0;
}

// Leaves its worker's list (returning once the worker is out of its burst); the worker stops with
// its last NIC.
void UnlistNic(NicCore* nic) {
  Worker* w = nic->worker;
  if (w == nullptr) return;
  bool empty;
  {
    UvLock lock(&w->mutex, lock_order::kWorker);
    nic->started = false;
    nic->worker = nullptr;
    w->nics.erase(std::remove(w->nics.begin(), w->nics.end(), nic), w->nics.end());
    empty = w->nics.empty();
  }
  if (empty) StopWorker(w);
}

// A switch goes: its worker has one fewer to balance.
void UnbindSwitch(PlaneCore* p, SwitchCore* sw) {
  UvLock bind(&p->mutex, lock_order::kPlane);
  if (sw->worker != nullptr) sw->worker->switches--;
  sw->worker = nullptr;
}

}  // namespace dataplane
}  // namespace emu
