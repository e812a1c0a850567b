// IrqLines: the interrupt lines of one IRQ index (a device's MSI-X vectors), as the client set them
// with SET_IRQS: an eventfd per vector (owned here), and VFIO's mask bit with its pending cause. Any
// thread may trigger a line (the data plane's worker, the socket thread, the interrupt timer, the JS
// thread), under whatever locks it holds: a trigger only queues the eventfd on the device's IrqWriter
// (irq_writer.h), whose own thread writes it, so no system call on a client's file is ever made here
// or by a caller. An eventfd replaced or cleared while queued stays open until its write is done.
//
// Plain C++ (no Node-API), so it links into native tests and fuzzers as it is.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "irq/irq_writer.h"

namespace emu {

class IrqLines {
 public:
  // What a trigger did. The numbers cross to TypeScript (lib/irq-lines.ts).
  enum Result : uint32_t {
    kFired = 0,    // the eventfd is signalled (queued for the device's writer)
    kPending = 1,  // the line is masked: it fires at unmask
    kNone = 2,     // no eventfd (the client has not enabled the vector), or no such vector
    kDropped = 3,  // the device's writer is stopped (its client is gone)
  };

  IrqLines(uint32_t count, std::shared_ptr<IrqWriter> writer)
      : writer_(std::move(writer)), tally_(std::make_shared<IrqWriter::Tally>()), lines_(count) {}
  ~IrqLines();
  IrqLines(const IrqLines&) = delete;
  IrqLines& operator=(const IrqLines&) = delete;

  uint32_t count() const { return static_cast<uint32_t>(lines_.size()); }

  // Gives vector v the eventfd `fd` (owned from here; -1: none), releasing the one it had; what was
  // pending on it is forgotten, the mask bit kept (VFIO's SET_IRQS DATA_EVENTFD). The writer must be
  // started for a trigger to reach it.
  void Assign(uint32_t v, int fd);
  Result Trigger(uint32_t v);
  // Masks or unmasks; unmasking delivers the cause that waited (the result is that trigger's, or kNone).
  Result SetMasked(uint32_t v, bool masked);
  bool Enabled(uint32_t v) const;
  // Every eventfd released, masks and pending causes cleared (the client went).
  void Clear();
  const std::shared_ptr<IrqWriter>& writer() const { return writer_; }

  struct Counts {
    double triggered = 0;  // written to the client's eventfd
    double dropped = 0;    // lost: its counter was full, or the writer stopped
  };
  Counts counts() const;

 private:
  struct Line {
    std::shared_ptr<IrqWriter::Target> target;
    bool masked = false;
    bool pending = false;
  };
  Result TriggerLocked(Line& line);
  void ReleaseLocked(Line& line, std::vector<std::shared_ptr<IrqWriter::Target>>* released);

  const std::shared_ptr<IrqWriter> writer_;
  const std::shared_ptr<IrqWriter::Tally> tally_;
  mutable std::mutex mutex_;
  std::vector<Line> lines_;
};

}  // namespace emu
