// A NIC's turn on the data plane's worker: its TX rings walked, each frame through its switch into
// the RX ring of the NIC it is for (or to JavaScript), interrupts raised after the burst. The
// per-frame path, kept in one file so that it compiles as one unit. See core.h.
#include <cstring>
#include <vector>

#include "dataplane/core.h"

namespace emu {
namespace dataplane {

void RaiseInterrupts(SwitchCore* sw) {
  for (size_t i = 0; i < sw->dirty.size(); i++) sw->dirty[i]->Raise();
  sw->dirty.clear();
}

size_t MaxFrameLength(uint32_t mtu, const uint8_t* frame, size_t length) {
  if (length >= 18) {
    const uint16_t type = static_cast<uint16_t>((frame[12] << 8) | frame[13]);
    if (type == 0x8100 || type == 0x88a8) return mtu + 18;
  }
  return mtu + 14;
}

void EscapeFrame(SwitchCore* sw, int to, const uint8_t* frame, size_t length, bool copy) {
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

namespace {

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

}  // namespace

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

}  // namespace dataplane
}  // namespace emu
