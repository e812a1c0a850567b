// The data plane: iavf NICs forwarding to each other through an emu switch on a native worker
// thread, with no JavaScript per frame (lib/dataplane.ts is the typed side; docs/architecture.md).
//
//   new DataPlane({ burst, minSleepUs, busyPolls, warmSleepUs, warmMs, maxSleepUs })
//   new NativeSwitch(plane, { agingMs, maxMacs, now, onEscape(ports: number[], frames: Buffer[], copies: boolean[]) })
//   new IavfNic(plane, tailFd | -1, state: ArrayBuffer, onEvents(flags), label?); nic.setTable(table | null);
//   nic.setVectors(vectors: IavfVectors | null); nic.route(frame) -> { queue, hash? } | null
//
// A NIC without a tail page (-1) only answers route(): the VF's filters and RSS for a TypeScript
// path that runs the rings itself; it can neither start nor join a switch.
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/fault_injection.h"
#include "base/js_callback.h"
#include "module.h"
#include "base/uv_lock.h"
#include "base/wake_up.h"
#include "base/watchdog.h"
#include "dataplane/iavf_nic.h"
#include "dataplane/mac_table.h"
#include "iavf/iavf_ring_core.h"
#include "iavf/iavf_vectors_binding.h"
#include "memory/guest_memory.h"
#include "memory/memory_lock.h"

namespace emu {
namespace {

using namespace iavf;

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
void RaiseInterrupts(SwitchCore* sw) {
  for (size_t i = 0; i < sw->dirty.size(); i++) sw->dirty[i]->Raise();
  sw->dirty.clear();
}

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

size_t MaxFrameLength(uint32_t mtu, const uint8_t* frame, size_t length) {
  if (length >= 18) {
    const uint16_t type = static_cast<uint16_t>((frame[12] << 8) | frame[13]);
    if (type == 0x8100 || type == 0x88a8) return mtu + 18;
  }
  return mtu + 14;
}

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
void EscapeFrame(SwitchCore* sw, int to, const uint8_t* frame, size_t length, bool copy = false) {
  if (sw->escapes.size() >= kMaxEscapes || sw->escape_bytes + length > kMaxEscapeBytes) {
    if (copy) {
      sw->capture_drops++;
    } else {
      sw->ports[to].counters[kDropOverrun]++;
    }
    return;
  }
  sw->escapes.push_back({to, copy, std::vector<uint8_t>(frame, frame + length)});
  sw->escape_bytes += length;
  sw->Wake();
}

// A frame for a native NIC, into its RX ring. False: the NIC cannot take it natively (its memory is
// out of reach): it went to JavaScript, and the NIC with it.
bool Receive(NicCore* nic, const uint8_t* frame, size_t length) {
  double* c = nic->counters;
  const RxRoute route = Route(nic->cfg, frame, length, c);
  if (!route.ok) return true;
  const uint32_t q = route.q;
  if (nic->table == nullptr || !nic->table->Enabled()) {
    // Nowhere to write it: the guest has not (re)enabled bus mastering.
    Stat(c, false, q, kDrops)++;
    return true;
  }
  const RxQueue& ring = nic->cfg.rx[q];
  uint32_t tail = nic->rx_tail[q];
  // Enough buffers for a frame of `length` by the cached tail? (Frames of one buffer: no division.)
  const size_t chunks = length <= ring.buffer_size || ring.buffer_size == 0 ? 1 : (length + ring.buffer_size - 1) / ring.buffer_size;
  const uint32_t head = nic->RxHead(q);
  if (tail >= ring.len || (tail >= head ? tail - head : tail + ring.len - head) < chunks) {
    tail = nic->Tail(kRxTails, q);
    nic->rx_tail[q] = tail;
  }
  if (route.strip) {
    // The tag goes into the descriptor (or, a port VLAN's, nowhere): the guest gets the frame without it.
    thread_local std::vector<uint8_t> stripped;
    stripped.resize(length - kVlanTagLen);
    length = StripVlanTag(frame, length, stripped.data());
    frame = stripped.data();
  }
  const RxResult r =
      RxWrite(*nic->space, ring, nic->RxHead(q), tail, frame, length, route.hash, route.report ? route.tci : -1);
  switch (r.status) {
    case kRxOk:
      nic->RxHead(q) = r.head;
      CountPacket(c, false, q, frame, length);
      nic->Notify(false, q);
      return true;
    case kRxNoBuffers:
    case kRxTooBig:
      Stat(c, false, q, kDrops)++;
      return true;
    case kRxBadIndex:
      Stat(c, false, q, kErrors)++;
      Stat(c, false, q, kDrops)++;
      return true;
    case kRxBadBuffer:
      nic->RxHead(q) = r.head;
      Stat(c, false, q, kErrors)++;
      Stat(c, false, q, kDrops)++;
      nic->Notify(false, q);
      return true;
    default:  // kRxRing, kRxIndirect
      nic->native = false;
      nic->flags.fetch_or(kEventSlow, std::memory_order_relaxed);
      if (nic->sw) nic->sw->Wake();
      return false;
  }
}

void Forwarder::DeliverTo(int to, const uint8_t* frame, size_t length) {
  SwitchCore::Port& port = sw_->ports[to];
  NicCore* nic = port.nic;
  if (nic != nullptr && nic->native) {
    if (length > MaxFrameLength(port.mtu, frame, length)) {
      port.counters[kDropOversize]++;
      return;
    }
    if (Receive(nic, frame, length)) {
      port.counters[kPortTxFrames]++;
      port.counters[kPortTxBytes] += static_cast<double>(length);
      if (port.mirror) EscapeFrame(sw_, to, frame, length, true);
      return;
    }
  }
  if (js_out_ != nullptr) {
    js_out_->push_back(to);
  } else {
    EscapeFrame(sw_, to, frame, length);
  }
}

// A worker's TX frames: counted on their queue and forwarded through the NIC's switch.
class ForwardSink : public TxSink {
 public:
  ForwardSink(NicCore* nic, uint32_t q, double now) : nic_(nic), q_(q), now_(now) {}

  bool Packet(const TxPacket& p, uint32_t* counts) override {
    return builder_.Build(
        p, counts,
        [&](size_t length) {
          // Room before the frame for the port VLAN's tag, the frame itself kept 16-byte aligned.
          scratch_.resize(kHeadroom + length);
          return scratch_.data() + kHeadroom;
        },
        [&](uint8_t* frame, size_t length) {
          frames++;
          bytes += length;
          switch (EgressPolicy(nic_->cfg, frame, length, q_, nic_->counters)) {
            case Egress::kDrop:
              return true;
            case Egress::kTagPortVlan:
              frame -= kVlanTagLen;
              length = InsertVlanTag(frame, length, nic_->cfg.port_vlan);
              break;
            case Egress::kSend:
              break;
          }
          CountPacket(nic_->counters, true, q_, frame, length);
          Ingress(frame, length);
          return true;
        });
  }

 private:
  // The switch side of the NIC's port: length checks, counters, then forwarding.
  void Ingress(const uint8_t* frame, size_t length) {
    SwitchCore* sw = nic_->sw.get();
    SwitchCore::Port& port = sw->ports[nic_->port];
    if (length < kMinFrame) {
      port.counters[kDropRunt]++;
      return;
    }
    if (length > MaxFrameLength(port.mtu, frame, length)) {
      port.counters[kDropOversize]++;
      return;
    }
    if (port.mirror) EscapeFrame(sw, nic_->port, frame, length, true);
    port.counters[kPortRxFrames]++;
    port.counters[kPortRxBytes] += static_cast<double>(length);
    Forwarder(sw, nullptr, &memo_).Forward(nic_->port, frame, length, now_);
  }

  static constexpr size_t kHeadroom = 16;
  static_assert(kHeadroom >= kVlanTagLen, "the port VLAN's tag goes in front of the frame");

  NicCore* nic_;
  uint32_t q_;
  double now_;
  FrameBuilder builder_;
  std::vector<uint8_t> scratch_;
  BurstMemo memo_;
};

// One NIC's turn: at most `burst` frames, TSO segments counted, over all its TX queues (a packet is
// never cut, so a turn ends at most one packet past it), starting one queue further at each turn so
// that no queue waits behind the others; returns the frames it produced. A turn holds the switch's
// mutex and the memory lock, which every other NIC of the switch and every DMA_MAP wait for.
uint64_t PollNic(NicCore* nic, uint32_t burst) {
  if (!nic->native || !nic->Attached() || nic->table == nullptr || !nic->table->Enabled()) return 0;
  uint64_t produced = 0;
  const double now = nic->sw->Now();
  const uint32_t first = nic->first_queue;
  nic->first_queue = (first + 1) % kQueues;
  for (uint32_t i = 0; i < kQueues && produced < burst; i++) {
    const uint32_t q = (first + i) % kQueues;
    if (!(nic->cfg.tx_enabled & (1u << q)) || nic->cfg.tx_len[q] == 0) continue;
    const uint32_t tail = nic->Tail(kTxTails, q);
    if (tail == nic->seen_tail[q] && !nic->more[q]) continue;
    nic->seen_tail[q] = tail;
    nic->more[q] = false;
    const uint32_t len = nic->cfg.tx_len[q];
    double* c = nic->counters;
    if (tail >= len) {
      Stat(c, true, q, kErrors)++;
      nic->flags.fetch_or(kEventBadTail, std::memory_order_relaxed);
      nic->sw->Wake();
      continue;
    }
    if (tail == nic->TxHead(q)) continue;
    ForwardSink sink(nic, q, now);
    const auto left = static_cast<uint32_t>(burst - produced);
    const TxPass pass = TxWalk(*nic->space, nic->cfg.tx_ring[q], len, nic->TxHead(q), tail, left, UINT32_MAX, sink);
    nic->heads[q] = pass.head;
    Stat(c, true, q, kErrors) += pass.counts[kBadAddress] + pass.counts[kBadLength] + pass.counts[kNoEop] +
                                 pass.counts[kBadTso];
    Stat(c, true, q, kDrops) += pass.counts[kDropped];
    produced += sink.frames;
    nic->largest_turn = std::max(nic->largest_turn, static_cast<double>(produced));
    nic->bursts++;
    if (pass.counts[kCompleted] > 0) nic->Notify(true, q);
    if (pass.stop == kTxBudget) nic->more[q] = true;
    if (pass.stop == kTxRing || pass.stop == kTxIndirect) {
      nic->native = false;
      nic->flags.fetch_or(kEventSlow, std::memory_order_relaxed);
      nic->sw->Wake();
      return produced;
    }
  }
  return produced;
}

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

bool ReadOption(Napi::Object o, const char* key, int64_t min, int64_t max, int64_t* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsNumber()) return false;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(min) && d <= static_cast<double>(max))) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

class DataPlane : public Napi::ObjectWrap<DataPlane> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "DataPlane",
                                   {
                                       InstanceMethod<&DataPlane::Stats>("stats"),
                                       InstanceMethod<&DataPlane::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit DataPlane(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataPlane>(info) {
    Napi::Env env = info.Env();
    core_ = std::make_shared<PlaneCore>();
    if (info[0].IsObject()) {
      Napi::Object o = info[0].As<Napi::Object>();
      int64_t burst = core_->burst;
      int64_t workers = 1;
      PlaneCore& c = *core_;
      if (!ReadOption(o, "burst", 1, 1024, &burst) || !ReadOption(o, "workers", 1, 64, &workers) || !ReadOption(o, "minSleepUs", 1, 1000000, &c.min_sleep_us) ||
          !ReadOption(o, "maxSleepUs", 1, 1000000, &c.max_sleep_us) ||
          !ReadOption(o, "busyPolls", 0, 1000000, &c.busy_polls) ||
          !ReadOption(o, "warmSleepUs", 1, 1000000, &c.warm_sleep_us) ||
          !ReadOption(o, "warmMs", 0, 1000000, &c.warm_ms) || c.max_sleep_us < c.min_sleep_us) {
        ThrowTypeError(env, "bad data plane options");
        return;
      }
      c.burst = static_cast<uint32_t>(burst);
      core_->workers.resize(static_cast<size_t>(workers));
    } else {
      core_->workers.resize(1);
    }
    for (size_t i = 0; i < core_->workers.size(); i++) {
      core_->workers[i] = std::make_unique<Worker>();
      core_->workers[i]->plane = core_.get();
      core_->workers[i]->index = static_cast<int>(i);
    }
    env_ = env;
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hook_ = true;
  }

  ~DataPlane() override {
    if (hook_) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    StopWorkers(core_.get());
  }

  const std::shared_ptr<PlaneCore>& core() const { return core_; }

  // An attached NIC joins the list of its switch's worker (a switch is bound to the least loaded worker
  // when the first of its NICs starts, so frames between NICs of one switch stay on one thread); the
  // worker starts with its first NIC.
  static void List(const std::shared_ptr<PlaneCore>& p, NicCore* nic, Napi::Env env) {
    if (nic->started || !nic->Attached()) return;
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
    if (!start) return;
    const int r = uv_thread_create(&w->thread, WorkerLoop, w);
    if (r < 0) {
      {
        UvLock lock(&w->mutex, lock_order::kWorker);
        w->running = false;
      }
      Unlisted(p, nic);
      ThrowErrno(env, -r, "uv_thread_create");
    }
  }

  // Leaves its worker's list (returning once the worker is out of its burst); the worker stops with
  // its last NIC.
  static void Unlisted(const std::shared_ptr<PlaneCore>&, NicCore* nic) {
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
  static void Unbind(const std::shared_ptr<PlaneCore>& p, SwitchCore* sw) {
    UvLock bind(&p->mutex, lock_order::kPlane);
    if (sw->worker != nullptr) sw->worker->switches--;
    sw->worker = nullptr;
  }

 private:
  static void CleanupHook(void* arg) {
    auto* self = static_cast<DataPlane*>(arg);
    self->hook_ = false;
    StopWorkers(self->core_.get());
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool running = false;
    double nics = 0, polls = 0, frames = 0;
    Napi::Array per = Napi::Array::New(env, core_->workers.size());
    for (size_t i = 0; i < core_->workers.size(); i++) {
      Worker* w = core_->workers[i].get();
      UvLock lock(&w->mutex, lock_order::kWorker);
      running = running || w->running;
      nics += static_cast<double>(w->nics.size());
      polls += w->polls;
      frames += w->frames;
      Napi::Object o = Napi::Object::New(env);
      o.Set("running", Napi::Boolean::New(env, w->running));
      o.Set("nics", Napi::Number::New(env, static_cast<double>(w->nics.size())));
      o.Set("polls", Napi::Number::New(env, w->polls));
      o.Set("frames", Napi::Number::New(env, w->frames));
      per.Set(static_cast<uint32_t>(i), o);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("running", Napi::Boolean::New(env, running));
    o.Set("nics", Napi::Number::New(env, nics));
    o.Set("polls", Napi::Number::New(env, polls));
    o.Set("frames", Napi::Number::New(env, frames));
    o.Set("workers", per);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopWorkers(core_.get());
    return info.Env().Undefined();
  }

  std::shared_ptr<PlaneCore> core_;
  napi_env env_ = nullptr;
  bool hook_ = false;
};

Napi::FunctionReference* DataPlane::constructor = nullptr;

DataPlane* PlaneOf(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(DataPlane::constructor->Value())) return nullptr;
  return DataPlane::Unwrap(v.As<Napi::Object>());
}

class NativeSwitch : public Napi::ObjectWrap<NativeSwitch> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeSwitch",
                                   {
                                       InstanceMethod<&NativeSwitch::AddPort>("addPort"),
                                       InstanceMethod<&NativeSwitch::RemovePort>("removePort"),
                                       InstanceMethod<&NativeSwitch::Forward>("forward"),
                                       InstanceMethod<&NativeSwitch::Lookup>("lookup"),
                                       InstanceMethod<&NativeSwitch::MacRows>("macTable"),
                                       InstanceMethod<&NativeSwitch::Counters>("counters"),
                                       InstanceMethod<&NativeSwitch::PortCounters>("portCounters"),
                                       InstanceMethod<&NativeSwitch::Flush>("flush"),
                                       InstanceMethod<&NativeSwitch::SetMirror>("setMirror"),
                                       InstanceMethod<&NativeSwitch::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit NativeSwitch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeSwitch>(info) {
    Napi::Env env = info.Env();
    DataPlane* plane = PlaneOf(info[0]);
    if (plane == nullptr || !info[1].IsObject()) {
      ThrowTypeError(env, "expected (plane, { agingMs, maxMacs, now, onEscape })");
      return;
    }
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Value aging = o.Get("agingMs");
    Napi::Value max = o.Get("maxMacs");
    Napi::Value now = o.Get("now");
    Napi::Value on_escape = o.Get("onEscape");
    if (!aging.IsNumber() || !max.IsNumber() || !now.IsNumber() || !on_escape.IsFunction()) {
      ThrowTypeError(env, "expected (plane, { agingMs, maxMacs, now, onEscape })");
      return;
    }
    const double max_macs = max.As<Napi::Number>().DoubleValue();
    if (!(aging.As<Napi::Number>().DoubleValue() > 0) || !(max_macs >= 1 && max_macs <= 1e9)) {
      ThrowTypeError(env, "agingMs must be > 0 and maxMacs >= 1");
      return;
    }
    plane_ = plane->core();
    plane_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    core_ = std::make_shared<SwitchCore>(aging.As<Napi::Number>().DoubleValue(), static_cast<uint32_t>(max_macs));
    core_->origin_ms = now.As<Napi::Number>().DoubleValue();
    core_->origin_ns = uv_hrtime();
    uv_async_t* async = OpenWakeUp(env, OnAsync, this);
    if (async == nullptr) return;
    core_->async = async;
    on_escape_.Set(env, on_escape.As<Napi::Function>(), "EmuNativeSwitch", info.This().As<Napi::Object>());
  }

  ~NativeSwitch() override { Shut(); }

  const std::shared_ptr<SwitchCore>& core() const { return core_; }
  const std::shared_ptr<PlaneCore>& plane() const { return plane_; }

 private:
  // A libuv callback: nothing may throw out of it (contain.h).
  static void OnAsync(uv_async_t* handle) {
    Contained("switch callback", [&] { Deliver(handle); });
  }
  static void Deliver(uv_async_t* handle);

  void Shut() {
    if (!core_) return;
    {
      UvLock lock(&core_->mutex, lock_order::kSwitch);
      if (core_->async == nullptr) return;
      CloseWakeUp(core_->async);
      core_->async = nullptr;
      core_->escapes.clear();
      core_->escape_bytes = 0;
    }
    on_escape_.Drop();
    DataPlane::Unbind(plane_, core_.get());
  }

  bool PortArg(const Napi::CallbackInfo& info, size_t i, int* out) {
    int64_t id;
    if (!ArgInt(info, i, 0, INT32_MAX, &id)) return false;
    if (static_cast<size_t>(id) >= core_->ports.size()) {
      ThrowTypeError(info.Env(), "no such port");
      return false;
    }
    *out = static_cast<int>(id);
    return true;
  }

  // addPort(mtu) -> id: a JavaScript port.
  Napi::Value AddPort(const Napi::CallbackInfo& info) {
    int64_t mtu;
    if (!ArgInt(info, 0, 68, 65535, &mtu)) return info.Env().Undefined();
    UvLock lock(&core_->mutex, lock_order::kSwitch);
    core_->ports.push_back({});
    core_->ports.back().attached = true;
    core_->ports.back().mtu = static_cast<uint32_t>(mtu);
    return Napi::Number::New(info.Env(), static_cast<double>(core_->ports.size() - 1));
  }

  // removePort(id): the port leaves; its MACs are forgotten (a NIC leaves through its own detach()).
  Napi::Value RemovePort(const Napi::CallbackInfo& info) {
    int id;
    if (!PortArg(info, 0, &id)) return info.Env().Undefined();
    UvLock lock(&core_->mutex, lock_order::kSwitch);
    if (core_->ports[id].nic != nullptr) return ThrowTypeError(info.Env(), "a NIC's port leaves with nic.detach()");
    core_->ports[id].attached = false;
    core_->table.Forget(id);
    return info.Env().Undefined();
  }

  // forward(from, frame, now) -> number[] | -1: a frame a JavaScript port sent (its checks done and
  // counted by the caller). Native NICs get it here; returns the ports JavaScript must deliver it to,
  // or -1 when it has nowhere to go (noDestination).
  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int from;
    if (!PortArg(info, 0, &from)) return env.Undefined();
    const uint8_t* frame;
    size_t length;
    if (!TypedBytes(info[1], &frame, &length) || !info[2].IsNumber()) {
      return ThrowTypeError(env, "expected (from, frame, now)");
    }
    if (length < kMinFrame) return ThrowTypeError(env, "a frame has at least 14 bytes");
    const double now = info[2].As<Napi::Number>().DoubleValue();
    std::vector<int> to;
    bool delivered;
    {
      UvLock lock(&core_->mutex, lock_order::kSwitch);
      if (!core_->ports[from].attached) return Napi::Array::New(env);
      delivered = Forwarder(core_.get(), &to).Forward(from, frame, length, now);
      RaiseInterrupts(core_.get());
    }
    if (!delivered) return Napi::Number::New(env, -1);
    Napi::Array out = Napi::Array::New(env, to.size());
    for (size_t i = 0; i < to.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, to[i]));
    return out;
  }

  // lookup(mac: number, now) -> port id or -1.
  Napi::Value Lookup(const Napi::CallbackInfo& info) {
    if (!info[0].IsNumber() || !info[1].IsNumber()) return ThrowTypeError(info.Env(), "expected (mac, now)");
    const uint64_t mac = static_cast<uint64_t>(info[0].As<Napi::Number>().DoubleValue());
    UvLock lock(&core_->mutex, lock_order::kSwitch);
    return Napi::Number::New(info.Env(), core_->table.Lookup(mac, info[1].As<Napi::Number>().DoubleValue()));
  }

  // macTable(now) -> [mac, port, lastSeen][], oldest learned first.
  Napi::Value MacRows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) return ThrowTypeError(env, "expected (now)");
    std::vector<MacTable::Row> rows;
    {
      UvLock lock(&core_->mutex, lock_order::kSwitch);
      rows = core_->table.List(info[0].As<Napi::Number>().DoubleValue());
    }
    Napi::Array out = Napi::Array::New(env, rows.size());
    for (size_t i = 0; i < rows.size(); i++) {
      Napi::Array row = Napi::Array::New(env, 3);
      row.Set(0u, Napi::Number::New(env, static_cast<double>(rows[i].mac)));
      row.Set(1u, Napi::Number::New(env, rows[i].port));
      row.Set(2u, Napi::Number::New(env, rows[i].last_seen));
      out.Set(static_cast<uint32_t>(i), row);
    }
    return out;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    MacCounters c;
    double capture_drops;
    {
      UvLock lock(&core_->mutex, lock_order::kSwitch);
      c = core_->table.counters;
      capture_drops = core_->capture_drops;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("learned", c.learned);
    o.Set("moved", c.moved);
    o.Set("aged", c.aged);
    o.Set("tableFull", c.table_full);
    o.Set("flooded", c.flooded);
    o.Set("unknownUnicast", c.unknown_unicast);
    o.Set("captureDrops", capture_drops);
    return o;
  }

  // portCounters(id) -> what the switch counted itself for a NIC's port (frames it forwarded natively).
  Napi::Value PortCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int id;
    if (!PortArg(info, 0, &id)) return env.Undefined();
    double c[kPortStats];
    {
      UvLock lock(&core_->mutex, lock_order::kSwitch);
      std::memcpy(c, core_->ports[id].counters, sizeof(c));
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("rxFrames", c[kPortRxFrames]);
    o.Set("rxBytes", c[kPortRxBytes]);
    o.Set("txFrames", c[kPortTxFrames]);
    o.Set("txBytes", c[kPortTxBytes]);
    Napi::Object drops = Napi::Object::New(env);
    drops.Set("runt", c[kDropRunt]);
    drops.Set("oversize", c[kDropOversize]);
    drops.Set("noDestination", c[kDropNoDestination]);
    drops.Set("overrun", c[kDropOverrun]);
    drops.Set("error", c[kDropError]);
    o.Set("drops", drops);
    return o;
  }

  // setMirror(id, on): copies of every frame a port sends or gets natively go to onEscape (a capture).
  Napi::Value SetMirror(const Napi::CallbackInfo& info) {
    int id;
    bool on;
    if (!PortArg(info, 0, &id) || !ArgBool(info, 1, &on)) return info.Env().Undefined();
    UvLock lock(&core_->mutex, lock_order::kSwitch);
    core_->ports[id].mirror = on;
    return info.Env().Undefined();
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    UvLock lock(&core_->mutex, lock_order::kSwitch);
    core_->table.Flush();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    return info.Env().Undefined();
  }

  std::shared_ptr<PlaneCore> plane_;
  Napi::ObjectReference plane_ref_;
  std::shared_ptr<SwitchCore> core_;
  JsCallback on_escape_;
};

Napi::FunctionReference* NativeSwitch::constructor = nullptr;

class IavfNic : public Napi::ObjectWrap<IavfNic> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "IavfNic",
                                   {
                                       InstanceMethod<&IavfNic::Configure>("configure"),
                                       InstanceMethod<&IavfNic::SetTable>("setTable"),
                                       InstanceMethod<&IavfNic::Attach>("attach"),
                                       InstanceMethod<&IavfNic::Detach>("detach"),
                                       InstanceMethod<&IavfNic::Start>("start"),
                                       InstanceMethod<&IavfNic::Stop>("stop"),
                                       InstanceMethod<&IavfNic::Kick>("kick"),
                                       InstanceMethod<&IavfNic::ResetHeads>("resetHeads"),
                                       InstanceMethod<&IavfNic::Receive>("receive"),
                                       InstanceMethod<&IavfNic::Route>("route"),
                                       InstanceMethod<&IavfNic::Egress>("egress"),
                                       InstanceMethod<&IavfNic::SetVectors>("setVectors"),
                                       InstanceMethod<&IavfNic::Info>("info"),
                                       InstanceMethod<&IavfNic::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit IavfNic(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IavfNic>(info) {
    uv_mutex_init(&own_mutex_);
    Napi::Env env = info.Env();
    DataPlane* plane = PlaneOf(info[0]);
    int fd = -1;
    if (plane == nullptr) {
      ThrowTypeError(env, "expected (plane, tailFd, state, onEvents)");
      return;
    }
    const bool no_page = info[1].IsNumber() && info[1].As<Napi::Number>().Int64Value() == -1;
    if (!no_page && !ArgFd(info, 1, &fd)) return;
    if (!info[2].IsArrayBuffer() || info[2].As<Napi::ArrayBuffer>().ByteLength() < kStateBytes ||
        !info[3].IsFunction()) {
      ThrowTypeError(env, "expected (plane, tailFd, state: ArrayBuffer, onEvents)");
      return;
    }
    void* map = no_page ? nullptr : mmap(nullptr, kTailPageBytes, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      ThrowErrno(env, errno, "mmap");
      return;
    }
    plane_ = plane->core();
    plane_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    Napi::ArrayBuffer state = info[2].As<Napi::ArrayBuffer>();
    state_ref_ = Napi::Persistent(state);
    nic_ = std::make_unique<NicCore>();
    nic_->owner = this;
    if (info[4].IsString()) nic_->label = watchdog::Label(info[4].As<Napi::String>().Utf8Value());
    nic_->tail_map = map;
    nic_->tails = static_cast<const uint32_t*>(map);
    nic_->heads = static_cast<uint32_t*>(state.Data());
    nic_->counters = reinterpret_cast<double*>(static_cast<uint8_t*>(state.Data()) + kHeadsBytes);
    on_events_.Set(env, info[3].As<Napi::Function>(), "EmuIavfNic", info.This().As<Napi::Object>());
  }

  ~IavfNic() override {
    Shut();
    uv_mutex_destroy(&own_mutex_);
  }

  // The switch's async callback: this NIC's exceptions since the last.
  void DeliverEvents(Napi::Env env) {
    if (!nic_) return;
    const uint32_t flags = nic_->flags.exchange(0, std::memory_order_acq_rel);
    if (flags == 0) return;
    Napi::HandleScope scope(env);
    on_events_.Call(env, Value(), {Napi::Number::New(env, flags)});
  }

 private:
  void Shut() {
    if (!nic_) return;
    DataPlane::Unlisted(plane_, nic_.get());
    DetachLocked();
    if (nic_->tail_map != nullptr) {
      memory_lock::Exclusive quiesce;
      munmap(nic_->tail_map, kTailPageBytes);
    }
    if (nic_->label != 0) watchdog::Unlabel(nic_->label);
    nic_.reset();
    on_events_.Drop();
  }

  void DetachLocked() {
    if (!nic_->Attached()) return;
    std::shared_ptr<SwitchCore> sw = nic_->sw;
    int port;
    {
      UvLock lock(&sw->mutex, lock_order::kSwitch);
      port = nic_->port;
      sw->ports[port].attached = false;
      sw->ports[port].nic = nullptr;
      sw->table.Forget(port);
      sw->dirty.erase(std::remove(sw->dirty.begin(), sw->dirty.end(), nic_.get()), sw->dirty.end());
      nic_->dirty = false;
      nic_->sw.reset();
      nic_->port = -1;
    }
    (void)port;
    switch_ref_.Reset();
  }

  // What guards the NIC's state: its switch's mutex once attached (the worker holds it for a burst);
  // before that no worker sees it, and its own mutex serves.
  uv_mutex_t* NicMutex() { return nic_ && nic_->sw ? &nic_->sw->mutex : &own_mutex_; }

  bool Alive(Napi::Env env) {
    if (nic_) return true;
    ThrowErrno(env, EBADF, "IavfNic");
    return false;
  }

  // configure({ mac, macs, promisc, spoofCheck, vlans, vlanStrip, portVlan, rssKey, rssLut,
  // numQueuePairs, tx, rx, txEnabled, rxEnabled, irqMap: [{ vector, rx, tx, rxItr, txItr }],
  // resetTx?, resetRx?, resume? }).
  Napi::Value Configure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    fault::Maybe(fault::kNapiCall);
    if (!info[0].IsObject()) return ThrowTypeError(env, "expected a configuration object");
    Napi::Object o = info[0].As<Napi::Object>();
    NicConfig cfg;
    if (!FieldBytes(o, "mac", cfg.mac, 6) || !FieldBytes(o, "rssKey", cfg.rss_key, kRssKeySize) ||
        !FieldBytes(o, "rssLut", cfg.rss_lut, kRssLutSize) || !FieldU32(o, "promisc", 3, &cfg.promisc) ||
        !FieldBool(o, "spoofCheck", &cfg.spoof_check) ||
        !FieldU32(o, "numQueuePairs", kQueues, &cfg.num_queue_pairs) ||
        !FieldU32(o, "txEnabled", 0xffff, &cfg.tx_enabled) || !FieldU32(o, "rxEnabled", 0xffff, &cfg.rx_enabled)) {
      return ThrowTypeError(env, "bad NIC configuration");
    }
    Napi::Value macs = o.Get("macs");
    Napi::Value tx = o.Get("tx");
    Napi::Value rx = o.Get("rx");
    if (!macs.IsArray() || !tx.IsArray() || !rx.IsArray()) return ThrowTypeError(env, "bad NIC configuration");
    Napi::Array m = macs.As<Napi::Array>();
    for (uint32_t i = 0; i < m.Length(); i++) {
      Napi::Value v = m.Get(i);
      if (!v.IsNumber()) return ThrowTypeError(env, "macs are numbers");
      cfg.macs.push_back(static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue()));
    }
    std::sort(cfg.macs.begin(), cfg.macs.end());
    Napi::Value vlans = o.Get("vlans");
    uint32_t port_vlan;
    if (!vlans.IsArray() || !FieldBool(o, "vlanStrip", &cfg.vlan_strip) || !FieldU32(o, "portVlan", 4094, &port_vlan)) {
      return ThrowTypeError(env, "bad NIC configuration");
    }
    cfg.port_vlan = static_cast<uint16_t>(port_vlan);
    Napi::Array va = vlans.As<Napi::Array>();
    for (uint32_t i = 0; i < va.Length(); i++) {
      Napi::Value v = va.Get(i);
      if (!v.IsNumber() || v.As<Napi::Number>().Uint32Value() > 4095) return ThrowTypeError(env, "vlans are ids 0-4095");
      cfg.vlans.push_back(static_cast<uint16_t>(v.As<Napi::Number>().Uint32Value()));
    }
    std::sort(cfg.vlans.begin(), cfg.vlans.end());
    // The Toeplitz table is rebuilt only for a new key (it takes a moment; virtchnl messages come often).
    const bool same_key = std::memcmp(cfg.rss_key, nic_->cfg.rss_key, kRssKeySize) == 0;
    if (!same_key) cfg.PrepareRss();
    auto queue = [&](Napi::Array list, uint32_t q, bool is_rx) {
      Napi::Value v = list.Get(q);
      if (v.IsUndefined() || v.IsNull()) return true;
      if (!v.IsObject()) return false;
      Napi::Object e = v.As<Napi::Object>();
      uint64_t at;
      uint32_t len;
      if (!FieldBigUint64(e, "ring", &at) || !FieldU32(e, "length", kMaxRingLen, &len) || len == 0) return false;
      if (!is_rx) {
        cfg.tx_ring[q] = at;
        cfg.tx_len[q] = len;
        return true;
      }
      uint32_t buffer_size, max_frame, desc;
      if (!FieldU32(e, "bufferSize", UINT32_MAX, &buffer_size) || !FieldU32(e, "maxFrame", UINT32_MAX, &max_frame) ||
          !FieldU32(e, "descSize", kRxDescSize, &desc) || (desc != kRxDescSize && desc != kRxDescSize16)) {
        return false;
      }
      cfg.rx[q] = {at, len, buffer_size, max_frame, desc};
      return true;
    };
    Napi::Array txs = tx.As<Napi::Array>();
    Napi::Array rxs = rx.As<Napi::Array>();
    for (uint32_t q = 0; q < kQueues; q++) {
      if ((q < txs.Length() && !queue(txs, q, false)) || (q < rxs.Length() && !queue(rxs, q, true))) {
        return ThrowTypeError(env, "bad queue configuration");
      }
    }
    Napi::Value irq_map = o.Get("irqMap");
    if (!irq_map.IsUndefined()) {
      if (!irq_map.IsArray()) return ThrowTypeError(env, "irqMap is an array");
      Napi::Array maps = irq_map.As<Napi::Array>();
      for (uint32_t i = 0; i < maps.Length(); i++) {
        if (!maps.Get(i).IsObject()) return ThrowTypeError(env, "bad irqMap entry");
        Napi::Object e = maps.Get(i).As<Napi::Object>();
        uint32_t vector, rxq, txq, rx_itr, tx_itr;
        if (!FieldU32(e, "vector", kNoVector - 1, &vector) || !FieldU32(e, "rx", 0xffff, &rxq) ||
            !FieldU32(e, "tx", 0xffff, &txq) || !FieldU32(e, "rxItr", 3, &rx_itr) || !FieldU32(e, "txItr", 3, &tx_itr)) {
          return ThrowTypeError(env, "bad irqMap entry");
        }
        // A queue in two maps raises the first, as the TypeScript path does.
        for (uint32_t q = 0; q < kQueues; q++) {
          if ((rxq & (1u << q)) && cfg.rx_vector[q] == kNoVector) {
            cfg.rx_vector[q] = static_cast<uint8_t>(vector);
            cfg.rx_itr[q] = static_cast<uint8_t>(rx_itr);
          }
          if ((txq & (1u << q)) && cfg.tx_vector[q] == kNoVector) {
            cfg.tx_vector[q] = static_cast<uint8_t>(vector);
            cfg.tx_itr[q] = static_cast<uint8_t>(tx_itr);
          }
        }
      }
    }
    // Queues that start again from descriptor 0 with this configuration (reconfigured, or enabled
    // again), and whether the worker takes the NIC back from JavaScript: in the same step as the
    // configuration, so no burst ever walks a new ring from an old head or an old ring from 0.
    uint32_t reset_tx = 0, reset_rx = 0;
    bool resume = false;
    if ((!o.Get("resetTx").IsUndefined() && !FieldU32(o, "resetTx", 0xffff, &reset_tx)) ||
        (!o.Get("resetRx").IsUndefined() && !FieldU32(o, "resetRx", 0xffff, &reset_rx)) ||
        (!o.Get("resume").IsUndefined() && !FieldBool(o, "resume", &resume))) {
      return ThrowTypeError(env, "bad queue resets");
    }
    UvLock lock(NicMutex(), lock_order::kSwitch);
    if (same_key) cfg.rss_table.swap(nic_->cfg.rss_table);
    nic_->cfg = std::move(cfg);
    ResetQueuesLocked(reset_tx, reset_rx);
    if (resume) nic_->native = true;
    return env.Undefined();
  }

  // Heads of the queues in the masks back to descriptor 0, and what the worker remembers of them;
  // the other queues are untouched. Under the NIC's mutex.
  void ResetQueuesLocked(uint32_t tx, uint32_t rx) {
    for (uint32_t q = 0; q < kQueues; q++) {
      if (tx & (1u << q)) {
        nic_->heads[q] = 0;
        nic_->seen_tail[q] = UINT32_MAX;
        nic_->more[q] = false;
      }
      if (rx & (1u << q)) {
        nic_->RxHead(q) = 0;
        nic_->rx_tail[q] = 0;
      }
    }
  }

  // setTable(table | null): the guest memory the NIC's rings and buffers are in (the device's DMA
  // table, there once it is served).
  Napi::Value SetTable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    GuestMemoryTable* t = nullptr;
    if (!info[0].IsNull()) {
      t = GuestMemoryTable::FromValue(info[0]);
      if (t == nullptr) return ThrowTypeError(env, "expected a GuestMemoryTable or null");
    }
    {
      UvLock lock(NicMutex(), lock_order::kSwitch);
      nic_->table = t;
      nic_->space = t == nullptr ? nullptr : std::make_unique<GuestMemoryTable::WorkerSpace>(t);
    }
    if (t == nullptr) {
      table_ref_.Reset();
    } else {
      table_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    }
    return env.Undefined();
  }

  // attach(sw: NativeSwitch, mtu) -> port id: the NIC becomes a port of the switch.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    int64_t mtu;
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().InstanceOf(NativeSwitch::constructor->Value())) {
      return ThrowTypeError(env, "expected a NativeSwitch");
    }
    if (!ArgInt(info, 1, 68, 65535, &mtu)) return env.Undefined();
    NativeSwitch* sw = NativeSwitch::Unwrap(info[0].As<Napi::Object>());
    if (sw->plane() != plane_) return ThrowTypeError(env, "the switch belongs to another data plane");
    if (nic_->tails == nullptr) return ThrowTypeError(env, "a NIC without a tail page cannot join a switch");
    if (nic_->Attached()) return ThrowTypeError(env, "the NIC is attached already");
    int id;
    {
      UvLock lock(&sw->core()->mutex, lock_order::kSwitch);
      SwitchCore* core = sw->core().get();
      core->ports.push_back({});
      SwitchCore::Port& port = core->ports.back();
      port.attached = true;
      port.mtu = static_cast<uint32_t>(mtu);
      port.nic = nic_.get();
      id = static_cast<int>(core->ports.size() - 1);
      nic_->sw = sw->core();
      nic_->port = id;
    }
    switch_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    return Napi::Number::New(env, id);
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    if (nic_) {
      DataPlane::Unlisted(plane_, nic_.get());  // out of the worker first: it polls only attached NICs
      DetachLocked();
    }
    return info.Env().Undefined();
  }

  // start(): the worker walks this NIC's TX rings; stop(): it no longer does (returns once it is out).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return info.Env().Undefined();
    if (nic_->tails == nullptr) return ThrowTypeError(info.Env(), "a NIC without a tail page cannot start");
    DataPlane::List(plane_, nic_.get(), info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (nic_) DataPlane::Unlisted(plane_, nic_.get());
    return info.Env().Undefined();
  }

  // kick(): a TX tail was written by message: the worker looks now, not at its next poll.
  Napi::Value Kick(const Napi::CallbackInfo& info) {
    Worker* w = nic_ ? nic_->worker : nullptr;
    if (w != nullptr) {
      UvLock lock(&w->mutex, lock_order::kWorker);
      uv_cond_signal(&w->cond);
    }
    return info.Env().Undefined();
  }

  // resetHeads(): the VF reset: every head to descriptor 0, and the worker runs the NIC again
  // (native) until its memory proves out of reach. (One queue's reset comes with configure().)
  Napi::Value ResetHeads(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return info.Env().Undefined();
    UvLock lock(NicMutex(), lock_order::kSwitch);
    ResetQueuesLocked(0xffff, 0xffff);
    nic_->native = true;
    return info.Env().Undefined();
  }

  // receive(frame) -> bool: a frame for this NIC from JavaScript, written natively; false when the NIC
  // runs in JavaScript (the caller takes the TypeScript path).
  Napi::Value Receive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    const uint8_t* frame;
    size_t length;
    if (!TypedBytes(info[0], &frame, &length)) return ThrowTypeError(env, "expected the frame as a Uint8Array");
    bool done = false;
    {
      UvLock lock(NicMutex(), lock_order::kSwitch);
      if (nic_->native && nic_->tails != nullptr) done = emu::Receive(nic_.get(), frame, length);
      if (nic_->sw) {
        RaiseInterrupts(nic_->sw.get());
      } else {
        nic_->Raise();
      }
    }
    return Napi::Boolean::New(env, done);
  }

  // route(frame): the VF's filters and RSS for a frame its TypeScript path receives (the same rules
  // as the worker's, counted in the same state): { queue, hash?, frame?, l2tag1? }, or null when
  // filtered or its queue is not there. `frame`: the frame to write instead, its VLAN tag taken out;
  // `l2tag1`: the tag for the descriptor.
  Napi::Value Route(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    const uint8_t* frame;
    size_t length;
    if (!TypedBytes(info[0], &frame, &length)) return ThrowTypeError(env, "expected the frame as a Uint8Array");
    iavf::RxRoute route;
    {
      UvLock lock(NicMutex(), lock_order::kSwitch);
      route = iavf::Route(nic_->cfg, frame, length, nic_->counters);
    }
    if (!route.ok) return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("queue", Napi::Number::New(env, route.q));
    if (route.hash >= 0) out.Set("hash", Napi::Number::New(env, static_cast<double>(route.hash)));
    if (route.strip) {
      Napi::Buffer<uint8_t> stripped = Napi::Buffer<uint8_t>::New(env, length - kVlanTagLen);
      iavf::StripVlanTag(frame, length, stripped.Data());
      out.Set("frame", stripped);
      if (route.report) out.Set("l2tag1", Napi::Number::New(env, route.tci));
    }
    return out;
  }

  // egress(frame, queue): the host's policy on a frame its TypeScript path sends from TX queue `queue`
  // (the same rules as the worker's, counted in the same state): the frame to send (the one given, or
  // a copy with the port VLAN's tag), or null when it may not go out.
  Napi::Value Egress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    const uint8_t* frame;
    size_t length;
    if (!TypedBytes(info[0], &frame, &length)) return ThrowTypeError(env, "expected the frame as a Uint8Array");
    int64_t q;
    if (!ArgInt(info, 1, 0, kQueues - 1, &q)) return env.Undefined();
    const auto queue = static_cast<uint32_t>(q);
    uint16_t port_vlan = 0;
    {
      UvLock lock(NicMutex(), lock_order::kSwitch);
      switch (iavf::EgressPolicy(nic_->cfg, frame, length, queue, nic_->counters)) {
        case iavf::Egress::kDrop:
          return env.Null();
        case iavf::Egress::kSend:
          return info[0];
        case iavf::Egress::kTagPortVlan:
          port_vlan = nic_->cfg.port_vlan;
          break;
      }
    }
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, length + kVlanTagLen);
    std::memcpy(out.Data() + kVlanTagLen, frame, length);
    iavf::InsertVlanTag(out.Data(), length, port_vlan);
    return out;
  }

  // setVectors(vectors: IavfVectors | null): the VF's interrupt vectors, which the NIC raises itself.
  Napi::Value SetVectors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    std::shared_ptr<iavf::Vectors> v;
    if (!info[0].IsNull()) {
      v = IavfVectorsOf(info[0]);
      if (!v) return ThrowTypeError(env, "expected an open IavfVectors or null");
    }
    UvLock lock(NicMutex(), lock_order::kSwitch);
    nic_->vectors = std::move(v);
    return env.Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!nic_) return o;
    UvLock lock(NicMutex(), lock_order::kSwitch);
    o.Set("native", Napi::Boolean::New(env, nic_->native));
    o.Set("started", Napi::Boolean::New(env, nic_->started));
    o.Set("port", Napi::Number::New(env, nic_->port));
    o.Set("bursts", Napi::Number::New(env, nic_->bursts));
    o.Set("largestTurn", Napi::Number::New(env, nic_->largest_turn));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    table_ref_.Reset();
    state_ref_.Reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<PlaneCore> plane_;
  Napi::ObjectReference plane_ref_;
  Napi::ObjectReference table_ref_;
  Napi::Reference<Napi::ArrayBuffer> state_ref_;
  Napi::ObjectReference switch_ref_;
  std::unique_ptr<NicCore> nic_;
  uv_mutex_t own_mutex_;
  JsCallback on_events_;

  friend class NativeSwitch;
};

Napi::FunctionReference* IavfNic::constructor = nullptr;

void NativeSwitch::Deliver(uv_async_t* handle) {
  auto* self = static_cast<NativeSwitch*>(handle->data);
  if (self == nullptr) return;
  Napi::Env env = self->Env();
  Napi::HandleScope scope(env);
  std::deque<SwitchCore::Escape> escapes;
  {
    UvLock lock(&self->core_->mutex, lock_order::kSwitch);
    escapes.swap(self->core_->escapes);
    self->core_->escape_bytes = 0;
  }
  if (!escapes.empty() && !self->on_escape_.Empty()) {
    Napi::Array ports = Napi::Array::New(env, escapes.size());
    Napi::Array frames = Napi::Array::New(env, escapes.size());
    Napi::Array copies = Napi::Array::New(env, escapes.size());
    uint32_t i = 0;
    for (auto& e : escapes) {
      ports.Set(i, Napi::Number::New(env, e.to));
      frames.Set(i, Napi::Buffer<uint8_t>::Copy(env, e.frame.data(), e.frame.size()));
      copies.Set(i, Napi::Boolean::New(env, e.copy));
      i++;
    }
    self->on_escape_.Call(env, self->Value(), {ports, frames, copies});
  }
  // Looked up again for each port: a callback may have detached or closed a NIC (or the switch).
  for (size_t port = 0;; port++) {
    if (handle->data == nullptr) return;
    IavfNic* nic = nullptr;
    {
      UvLock lock(&self->core_->mutex, lock_order::kSwitch);
      if (port >= self->core_->ports.size()) break;
      NicCore* core = self->core_->ports[port].nic;
      if (core != nullptr) nic = core->owner;
    }
    if (nic != nullptr) nic->DeliverEvents(env);
  }
}

}  // namespace

void InitDataPlane(Napi::Env env, Napi::Object exports) {
  // The layout of an IavfNic's `state`, for lib/dataplane.ts: one definition, here.
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("queues", kQueues);
  layout.Set("queueStats", static_cast<uint32_t>(kQueueStats));
  layout.Set("txStats", kTxStats);
  layout.Set("rxStats", kRxStats);
  layout.Set("rxKinds", kRxKinds);
  layout.Set("txKinds", kTxKinds);
  layout.Set("filtered", kFiltered);
  layout.Set("spoofed", kSpoofed);
  layout.Set("counterCount", kCounterCount);
  layout.Set("headsBytes", static_cast<double>(kHeadsBytes));
  layout.Set("stateBytes", static_cast<double>(kStateBytes));
  layout.Set("eventSlow", kEventSlow);
  layout.Set("eventBadTail", kEventBadTail);
  layout.Set("eventFault", kEventFault);
  exports.Set("dataPlaneLayout", layout);
  exports.Set("DataPlane", DataPlane::Define(env));
  exports.Set("NativeSwitch", NativeSwitch::Define(env));
  exports.Set("IavfNic", IavfNic::Define(env));
}

}  // namespace emu
