// The data plane's core: iavf NICs forwarding to each other through an emu switch on a native worker
// thread, with no JavaScript per frame (lib/dataplane.ts is the typed side; docs/architecture.md).
//
// Who owns what:
// - The worker walks the TX rings of every started NIC that is natively attached to a switch, reading
//   the TX tails from the NIC's shared tail page (its own read-only mapping), a burst (`burst` frames)
//   per queue at a time; each frame goes through the switch: learned, then written straight into the
//   RX ring of the destination NIC (filters, RSS and the ring rules of iavf_nic.h and
//   iavf_ring_core.h), or handed to JavaScript through the switch's bounded escape queue when the
//   destination is a JavaScript port (a test, a pcap-captured NIC) or a NIC that went to its
//   TypeScript path. It sleeps adaptively when idle, as the DoorbellWatcher does.
// - Frames from JavaScript ports reach the same switch through forward(): native NICs get them
//   inside the call, and the JavaScript ports to deliver to come back.
// - Interrupts: after each burst (and each frame from JavaScript) the queues with work done raise
//   their MSI-X vectors, by the NIC's CONFIG_IRQ_MAP, through the VF's native vectors (iavf_vectors.h:
//   automask, pending causes, ITR), which signal the client's eventfds: no JavaScript per interrupt.
// - JavaScript keeps the control plane: it configures each NIC (configure(), from virtchnl), hears of
//   the exceptions (onEvents: kSlow when the NIC met memory its worker cannot reach, after which
//   JavaScript runs it; kBadTail), and reads counters and heads from `state` without a call.
//
// Threads: `workers` worker threads (default 1); a switch is bound to the least loaded one when the first
// of its NICs starts, and all its NICs run there, so frames between them stay on one thread.
//
// Locking: one mutex per switch guards the switch, its NICs and its escape queue; a worker holds it for
// one NIC's burst at a time, together with memory_lock::Shared (the quiesce point with DMA_UNMAP, see
// memory_lock.h). Each worker's own mutex guards its list of NICs and its sleep. JavaScript calls take
// the switch's mutex too and never run JavaScript while holding it. Order: worker, switch, memory;
// a NIC's vectors (and their lines) after the switch.
//
// Files: this header (the state every part shares), forwarding.cc (a NIC's turn: TX walk, switch,
// RX write; the per-frame path), workers.cc (the worker threads, their sleep and their lists),
// plane_js.cc, switch_js.cc and nic_js.cc (the JavaScript classes, which reach each other through
// bindings.h).
#pragma once

#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "dataplane/iavf_nic.h"
#include "dataplane/mac_table.h"
#include "iavf/iavf_ring_core.h"
#include "iavf/iavf_vectors.h"
#include "memory/guest_memory.h"

namespace emu {
namespace dataplane {

using namespace iavf;  // the iavf rules are this layer's vocabulary

// The tail page's layout (BAR0 offsets of QTX_TAIL1 and QRX_TAIL1), and its size.
constexpr size_t kTxTails = 0x0000;
constexpr size_t kRxTails = 0x2000;
constexpr size_t kTailPageBytes = 0x3000;
constexpr uint32_t kTailMask = 0x1fff;

// `state`: heads (uint32 TX[16], RX[16]), then the counters (double, iavf_nic.h).
constexpr size_t kHeadsBytes = 2 * kQueues * 4;
constexpr size_t kStateBytes = kHeadsBytes + kCounterCount * 8;

// Event flags for onEvents.
constexpr uint32_t kEventSlow = 1;      // the NIC met memory its worker cannot reach: JavaScript runs it now
constexpr uint32_t kEventBadTail = 2;   // a TX tail beyond its ring (counted as an error)
constexpr uint32_t kEventFault = 4;     // the worker's burst threw (contain.h): JavaScript runs it now (with kEventSlow)

// A switch port's counters, seen from the switch (PortStats in packages/network): rx is what the
// switch received from the port.
enum PortStat : uint32_t {
  kPortRxFrames,
  kPortRxBytes,
  kPortTxFrames,
  kPortTxBytes,
  kDropRunt,
  kDropOversize,
  kDropNoDestination,
  kDropOverrun,
  kDropError,
  kPortStats,
};

// What may wait for JavaScript in one switch's escape queue.
constexpr size_t kMaxEscapes = 1024;
constexpr size_t kMaxEscapeBytes = 4 << 20;

struct NicCore;
struct Worker;
class IavfNic;

struct SwitchCore {
  struct Port {
    bool attached = false;
    bool mirror = false;  // every frame it sends or gets natively goes to JavaScript too (a capture)
    uint32_t mtu = 1500;
    NicCore* nic = nullptr;  // a native NIC; nullptr for a JavaScript port
    double counters[kPortStats] = {};
  };
  struct Escape {
    int to;
    bool copy;  // a capture's copy of a frame port `to` sent or got, not one to deliver
    std::vector<uint8_t> frame;
  };

  SwitchCore(double aging_ms, uint32_t max_macs) : table(aging_ms, max_macs) { uv_mutex_init(&mutex); }
  ~SwitchCore() { uv_mutex_destroy(&mutex); }

  // Guards the switch and the NICs attached to it: a worker holds it for one NIC's burst.
  uv_mutex_t mutex;
  // The worker this switch's NICs run on (bound when the first of them starts).
  Worker* worker = nullptr;
  MacTable table;
  std::vector<Port> ports;  // by id; ids are never reused
  double capture_drops = 0;  // capture copies the escape queue had no room for
  std::deque<Escape> escapes;
  size_t escape_bytes = 0;
  uv_async_t* async = nullptr;  // the JS object's; nullptr once it closed
  std::vector<NicCore*> dirty;  // NICs with queue events whose interrupts are not raised yet
  // The worker's clock for the MAC table: JavaScript's `now` at creation, advanced by uv_hrtime.
  double origin_ms = 0;
  uint64_t origin_ns = 0;

  double Now() const { return origin_ms + static_cast<double>(uv_hrtime() - origin_ns) / 1e6; }
  void Wake() {
    if (async != nullptr) uv_async_send(async);
  }
};

struct NicCore {
  NicConfig cfg;
  const GuestMemoryTable* table = nullptr;
  std::unique_ptr<GuestMemoryTable::WorkerSpace> space;  // the table as the worker reaches it
  const uint32_t* tails = nullptr;  // the tail page, read-only
  void* tail_map = nullptr;
  uint32_t* heads = nullptr;  // in `state`: TX[16], RX[16]
  double* counters = nullptr;
  std::shared_ptr<iavf::Vectors> vectors;  // the VF's interrupts (none: they are lost)
  std::shared_ptr<SwitchCore> sw;
  int port = -1;
  bool native = true;    // false: JavaScript runs it (its memory was out of the worker's reach)
  bool started = false;  // in its worker's list
  Worker* worker = nullptr;
  uint32_t seen_tail[kQueues];
  bool more[kQueues] = {};  // the last pass spent its burst: go on without a new tail
  // QRX_TAIL1 as last read from the page: the guest only moves it forward (more buffers), so an old
  // value is a safe under-estimate; it is read again only when it leaves too few buffers.
  uint32_t rx_tail[kQueues] = {};
  // Queues with work done since their interrupts were last raised (bit q), and whether the NIC is on
  // its switch's dirty list; under the NIC's mutex.
  uint32_t rx_events = 0;
  uint32_t tx_events = 0;
  bool dirty = false;
  std::atomic<uint32_t> flags{0};
  double bursts = 0;
  double largest_turn = 0;   // the most frames one turn produced (the bound PollNic keeps)
  uint64_t label = 0;        // the stall detector's name for it (watchdog.h)
  uint32_t first_queue = 0;  // where the next turn starts
  IavfNic* owner = nullptr;  // the JS object, for its events

  NicCore() { std::fill(std::begin(seen_tail), std::end(seen_tail), UINT32_MAX); }
  uint32_t TxHead(uint32_t q) const { return heads[q]; }
  uint32_t& RxHead(uint32_t q) { return heads[kQueues + q]; }
  uint32_t Tail(size_t area, uint32_t q) const {
    return __atomic_load_n(&tails[(area + 4 * q) / 4], __ATOMIC_ACQUIRE) & kTailMask;
  }
  bool Attached() const { return sw != nullptr && port >= 0; }
  // Work done on a queue: recorded per frame; its interrupt is raised once, after the burst (Raise).
  void Notify(bool tx, uint32_t q) {
    (tx ? tx_events : rx_events) |= 1u << q;
    if (!dirty && sw) {
      dirty = true;
      sw->dirty.push_back(this);
    }
  }
  // The interrupts of the queues with work done, by the VF's CONFIG_IRQ_MAP.
  void Raise() {
    const uint32_t rx = rx_events, tx = tx_events;
    rx_events = tx_events = 0;
    dirty = false;
    if (!vectors) return;
    for (uint32_t q = 0; q < kQueues; q++) {
      if ((rx & (1u << q)) && cfg.rx_vector[q] != kNoVector) vectors->Raise(cfg.rx_vector[q], cfg.rx_itr[q]);
      if ((tx & (1u << q)) && cfg.tx_vector[q] != kNoVector) vectors->Raise(cfg.tx_vector[q], cfg.tx_itr[q]);
    }
  }
};

// After a burst, with the switch's mutex held: every NIC that got work raises its interrupts.
void RaiseInterrupts(SwitchCore* sw);

struct PlaneCore;

// One worker thread and the NICs it polls.
struct Worker {
  PlaneCore* plane = nullptr;
  uv_mutex_t mutex;  // the list, the sleep
  uv_cond_t cond;
  std::vector<NicCore*> nics;  // started NICs
  uv_thread_t thread{};
  bool running = false;
  bool stop = false;
  size_t switches = 0;  // bound to it
  int index = 0;
  double polls = 0;
  double frames = 0;

  Worker() {
    uv_mutex_init(&mutex);
    uv_cond_init(&cond);
  }
  ~Worker() {
    uv_cond_destroy(&cond);
    uv_mutex_destroy(&mutex);
  }
};

struct PlaneCore {
  uv_mutex_t mutex;  // binding switches to workers (JS thread only)
  std::vector<std::unique_ptr<Worker>> workers;
  uint32_t burst = 32;
  // Polling, as DoorbellWatcher's (same defaults).
  int64_t min_sleep_us = 20;
  int64_t busy_polls = 8;
  int64_t warm_sleep_us = 250;
  int64_t warm_ms = 100;
  int64_t max_sleep_us = 1000;

  PlaneCore() { uv_mutex_init(&mutex); }
  ~PlaneCore() { uv_mutex_destroy(&mutex); }
};

// The longest frame a port of `mtu` takes (a VLAN tag's 4 bytes more when the frame has one).
size_t MaxFrameLength(uint32_t mtu, const uint8_t* frame, size_t length);

// Forwarding inside one switch, with the plane's mutex held. js_out: the JavaScript ports to deliver
// to, for a frame JavaScript sent; nullptr for a frame from a worker (they are escaped instead).
// A burst's last source learned and destination looked up: the frames of one burst mostly share them,
// and within a burst (one `now`, one source port) the table would answer the same.
struct BurstMemo {
  bool valid = false;
  uint64_t src = 0;
  uint64_t dst = 0;
  int to = -1;
};

class Forwarder {
 public:
  Forwarder(SwitchCore* sw, std::vector<int>* js_out, BurstMemo* memo = nullptr)
      : sw_(sw), js_out_(js_out), memo_(memo) {}

  // Returns false when the frame had nowhere to go (noDestination: counted here for a native source).
  bool Forward(int from, const uint8_t* frame, size_t length, double now) {
    MacTable& t = sw_->table;
    const uint64_t src = MacAt(frame + 6);
    const bool seen = memo_ != nullptr && memo_->valid && memo_->src == src;
    if (!(frame[6] & 1) && !seen) t.Learn(src, from, now);
    if (frame[0] & 1) return Flood(from, frame, length);
    const uint64_t dst = MacAt(frame);
    int to;
    if (seen && memo_->dst == dst) {
      to = memo_->to;
    } else {
      to = t.Lookup(dst, now);
      if (memo_ != nullptr) *memo_ = {!(frame[6] & 1), src, dst, to};
    }
    if (to < 0) {
      t.counters.unknown_unicast++;
      return Flood(from, frame, length);
    }
    if (to == from) return NoDestination(from);
    DeliverTo(to, frame, length);
    return true;
  }

 private:
  bool Flood(int from, const uint8_t* frame, size_t length) {
    sw_->table.counters.flooded++;
    int targets = 0;
    for (size_t id = 0; id < sw_->ports.size(); id++) {
      if (static_cast<int>(id) == from || !sw_->ports[id].attached) continue;
      targets++;
      DeliverTo(static_cast<int>(id), frame, length);
    }
    return targets > 0 || NoDestination(from);
  }

  bool NoDestination(int from) {
    if (sw_->ports[from].nic != nullptr && js_out_ == nullptr) sw_->ports[from].counters[kDropNoDestination]++;
    return false;
  }

  void DeliverTo(int to, const uint8_t* frame, size_t length);

  SwitchCore* sw_;
  std::vector<int>* js_out_;
  BurstMemo* memo_;
};

// Hands a frame to JavaScript through the switch's escape queue (bounded: past it, a frame to deliver
// is counted overrun on its port, a capture's copy in capture_drops).
void EscapeFrame(SwitchCore* sw, int to, const uint8_t* frame, size_t length, bool copy = false);

// A frame for a native NIC, into its RX ring. False: the NIC cannot take it natively (its memory is
// out of reach): it went to JavaScript, and the NIC with it.
bool Receive(NicCore* nic, const uint8_t* frame, size_t length);

// One NIC's turn (forwarding.cc): at most `burst` frames; returns the frames it produced.
uint64_t PollNic(NicCore* nic, uint32_t burst);

// The workers (workers.cc).
void StopWorker(Worker* w);
void StopWorkers(PlaneCore* p);
// An attached NIC joins its switch's worker; returns 0 or uv_thread_create's error.
int ListNic(PlaneCore* p, NicCore* nic);
// Leaves its worker's list, returning once the worker is out of its burst.
void UnlistNic(NicCore* nic);
// A switch goes: its worker has one fewer to balance.
void UnbindSwitch(PlaneCore* p, SwitchCore* sw);

}  // namespace dataplane
}  // namespace emu
