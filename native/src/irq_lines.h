// IrqLines: the interrupt lines of one IRQ index (a device's MSI-X vectors), as the client set them
// with SET_IRQS: an eventfd per vector (owned here), and VFIO's mask bit with its pending cause. Any
// thread may trigger a line (the data plane's worker, the socket thread, the interrupt timer, the JS
// thread); the fd is written under the lines' mutex, so a SET_IRQS that replaces or closes it can
// never leave a trigger writing to a closed (or reused) fd number.
//
// Plain C++ (no Node-API), so it links into native tests and fuzzers as it is.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace emu {

class IrqLines {
 public:
  // What a trigger did. The numbers cross to TypeScript (lib/irq-lines.ts).
  enum Result : uint32_t {
    kFired = 0,    // the eventfd was signalled
    kPending = 1,  // the line is masked: it fires at unmask
    kNone = 2,     // no eventfd (the client has not enabled the vector), or no such vector
    kDropped = 3,  // the write failed (the counter is full: the client never reads it)
  };

  explicit IrqLines(uint32_t count) : lines_(count) {}
  ~IrqLines();
  IrqLines(const IrqLines&) = delete;
  IrqLines& operator=(const IrqLines&) = delete;

  uint32_t count() const { return static_cast<uint32_t>(lines_.size()); }

  // Gives vector v the eventfd `fd` (owned from here; -1: none), closing the one it had; what was
  // pending on it is forgotten, the mask bit kept (VFIO's SET_IRQS DATA_EVENTFD).
  void Assign(uint32_t v, int fd);
  Result Trigger(uint32_t v);
  // Masks or unmasks; unmasking delivers the cause that waited (the result is that trigger's, or kNone).
  Result SetMasked(uint32_t v, bool masked);
  bool Enabled(uint32_t v) const;
  // Every eventfd closed, masks and pending causes cleared (the client went).
  void Clear();

  struct Counts {
    double triggered = 0;
    double dropped = 0;
  };
  Counts counts() const;

 private:
  struct Line {
    int fd = -1;
    bool masked = false;
    bool pending = false;
  };
  Result TriggerLocked(Line& line);

  mutable std::mutex mutex_;
  std::vector<Line> lines_;
  Counts counts_;
};

}  // namespace emu
