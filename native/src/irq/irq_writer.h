// IrqWriter: the one thread that writes a device's interrupt eventfds.
//
// An interrupt eventfd is the client's file: it can clear O_NONBLOCK on it (the flag belongs to the
// open file both processes share) and fill its counter, and the next write(2) blocks until it reads.
// So no thread that serves anyone else writes one: a trigger (from the data plane's worker, the socket
// thread, the interrupt timer or JavaScript, under whatever locks they hold) only queues the eventfd
// here, which costs no system call on the client's file, and this thread, one per device while its
// client has eventfds, writes it with no lock held. A client that blocks it stops only its own
// device's interrupts. Stop() interrupts a blocked write (thread_interrupt.h) and joins.
//
// Triggers coalesce as MSI-X does: an eventfd queued and not yet written is not queued twice, and the
// counter the client reads tells it that something happened, not how often.
//
// Plain C++ (no Node-API): it links into native tests and fuzzers as it is.
#pragma once

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace emu {

class IrqWriter {
 public:
  // What became of triggers, for the lines that share a tally (one IRQ index).
  struct Tally {
    std::atomic<uint64_t> delivered{0};
    std::atomic<uint64_t> dropped{0};  // counter full (the client does not read), or given up at Stop
  };

  // An eventfd a line signals, owned: closed when the last holder (the line, the queue, a write in
  // progress) lets go.
  class Target {
   public:
    Target(int fd, std::shared_ptr<Tally> tally) : fd_(fd), tally_(std::move(tally)) {}
    ~Target();
    Target(const Target&) = delete;
    Target& operator=(const Target&) = delete;
    int fd() const { return fd_; }
    // No longer any line's (replaced or cleared): a write of it that blocks is given up.
    void Retire() { retired_.store(true, std::memory_order_release); }
    bool Retired() const { return retired_.load(std::memory_order_acquire); }

   private:
    friend class IrqWriter;
    const int fd_;
    std::shared_ptr<Tally> tally_;
    std::atomic<bool> queued_{false};
    std::atomic<bool> retired_{false};
  };

  // Event bits for the owner (Events()).
  static constexpr uint32_t kDropped = 1;

  explicit IrqWriter(std::string name) : name_(std::move(name)) {}
  ~IrqWriter();
  IrqWriter(const IrqWriter&) = delete;
  IrqWriter& operator=(const IrqWriter&) = delete;

  // Starts the thread if it is not running. Throws std::system_error when no thread can be made.
  void Start();
  // Stops the thread: a write blocked on a client's eventfd is interrupted, what is still queued is
  // dropped (counted), and every Target it held is released. Triggers meanwhile are dropped.
  void Stop();
  // Queues t for writing (any thread, any locks held: no system call on the client's file). False
  // when the writer is stopped (the trigger is counted dropped).
  bool Post(const std::shared_ptr<Target>& t);
  // t was retired: if a write of it is blocked, it is interrupted.
  void Retired(const Target* t);

  // Whether nothing is queued or being written (tests wait for it).
  bool Idle() const;
  // Nanoseconds the write in progress has taken so far (0: none), for the stall detector.
  uint64_t BusyNs() const;
  const std::string& name() const { return name_; }
  // Called (from the writer's thread, with no lock of the writer's held) when an event bit is first
  // set; the owner collects the bits with TakeEvents. Empty: none.
  void SetWake(std::function<void()> wake);
  uint32_t TakeEvents() { return events_.exchange(0, std::memory_order_acq_rel); }

 private:
  void Loop();
  void Write(Target* t);
  void Event(uint32_t bit);

  const std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable cond_;
  std::deque<std::shared_ptr<Target>> queue_;
  const Target* current_ = nullptr;  // being written, under mutex_
  std::thread thread_;
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> exited_{false};
  std::atomic<uint64_t> busy_since_{0};
  std::atomic<uint32_t> events_{0};
  std::mutex wake_mutex_;
  std::function<void()> wake_;
};

}  // namespace emu
