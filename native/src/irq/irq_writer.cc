// IrqWriter (irq_writer.h).
#include "irq/irq_writer.h"

#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "base/lock_order.h"
#include "base/steady_clock.h"
#include "base/thread_interrupt.h"
#include "base/watchdog.h"

namespace emu {
IrqWriter::Target::~Target() {
  if (fd_ >= 0) close(fd_);
}

IrqWriter::~IrqWriter() { Stop(); }

void IrqWriter::Start() {
  thread_interrupt::Install();
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
  if (running_) return;
  stop_.store(false, std::memory_order_release);
  exited_.store(false, std::memory_order_release);
  thread_ = std::thread([this] { Loop(); });  // may throw: then nothing changed
  running_ = true;
}

void IrqWriter::Stop() {
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
    if (!running_) return;
    stop_.store(true, std::memory_order_release);
  }
  cond_.notify_all();
  // A write blocked on the client's eventfd returns EINTR; the signal may land just before the call
  // starts, so it is sent until the thread is out.
  while (!exited_.load(std::memory_order_acquire)) {
    thread_interrupt::Interrupt(thread_.native_handle());
    struct timespec pause = {0, 100000};
    nanosleep(&pause, nullptr);
  }
  thread_.join();
  std::deque<std::shared_ptr<Target>> left;
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
    running_ = false;
    left.swap(queue_);
  }
  for (auto& t : left) {
    t->queued_.store(false, std::memory_order_release);
    t->tally_->dropped.fetch_add(1, std::memory_order_relaxed);
  }
  // `left` goes here, outside the mutex: the last holder of a Target closes its fd.
}

bool IrqWriter::Post(const std::shared_ptr<Target>& t) {
  if (t->queued_.exchange(true, std::memory_order_acq_rel)) return true;  // coalesced
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
    bool queued = false;
    if (running_ && !stop_.load(std::memory_order_relaxed)) {
      try {
        queue_.push_back(t);
        queued = true;
      } catch (const std::bad_alloc&) {
      }
    }
    if (!queued) {
      t->queued_.store(false, std::memory_order_release);
      t->tally_->dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  cond_.notify_one();
  return true;
}

void IrqWriter::Retired(const Target* t) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
  if (running_ && current_ == t) thread_interrupt::Interrupt(thread_.native_handle());
}

bool IrqWriter::Idle() const {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
  return queue_.empty() && current_ == nullptr;
}

uint64_t IrqWriter::BusyNs() const {
  const uint64_t since = busy_since_.load(std::memory_order_acquire);
  return since == 0 ? 0 : SteadyNowNs() - since;
}

void IrqWriter::SetWake(std::function<void()> wake) {
  lock_order::Guard<std::mutex> lock(wake_mutex_, lock_order::kLeaf);
  wake_ = std::move(wake);
}

void IrqWriter::Event(uint32_t bit) {
  if (events_.fetch_or(bit, std::memory_order_acq_rel) & bit) return;
  lock_order::Guard<std::mutex> lock(wake_mutex_, lock_order::kLeaf);
  if (wake_) wake_();
}

void IrqWriter::Loop() {
  thread_interrupt::AllowHere();
  const std::string title = "emu-irq:" + name_;
  prctl(PR_SET_NAME, title.substr(0, 15).c_str(), 0, 0, 0);
  watchdog::Beat beat(title);
  lock_order::UniqueGuard<std::mutex> lock(mutex_, lock_order::kIrqWriter);
  while (!stop_.load(std::memory_order_acquire)) {
    if (queue_.empty()) {
      cond_.wait(lock.held());
      continue;
    }
    std::shared_ptr<Target> t = std::move(queue_.front());
    queue_.pop_front();
    current_ = t.get();
    lock.unlock();
    // Cleared first: a trigger from here on queues it again, and is not lost in this write.
    t->queued_.store(false, std::memory_order_release);
    {
      watchdog::Busy busy(&beat, "writing an interrupt eventfd (its client's: a client that clears O_NONBLOCK and does not read it holds this)");
      Write(t.get());
    }
    t.reset();  // may close a retired Target's fd: never under the mutex
    lock.lock();
    current_ = nullptr;
  }
  lock.unlock();
  exited_.store(true, std::memory_order_release);
}

void IrqWriter::Write(Target* t) {
  const uint64_t one = 1;
  busy_since_.store(SteadyNowNs(), std::memory_order_release);
  for (;;) {
    const ssize_t n = write(t->fd_, &one, sizeof(one));
    if (n == static_cast<ssize_t>(sizeof(one))) {
      t->tally_->delivered.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    if (n < 0 && errno == EINTR) {
      if (!stop_.load(std::memory_order_acquire) && !t->Retired()) continue;  // another signal
      // Stop, or the eventfd was replaced while the client held the write blocked.
      t->tally_->dropped.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    // EAGAIN: the counter is full, the client never reads it. The interrupt is lost, as it would be
    // on hardware whose message the host cannot take.
    t->tally_->dropped.fetch_add(1, std::memory_order_relaxed);
    Event(kDropped);
    break;
  }
  busy_since_.store(0, std::memory_order_release);
}

}  // namespace emu
