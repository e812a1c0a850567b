// IavfNic, the JavaScript object of one VF on the data plane (core.h):
//
//   new IavfNic(plane, tailFd | -1, state: ArrayBuffer, onEvents(flags), label?); nic.configure({...});
//   nic.setTable(table | null); nic.setVectors(vectors | null); attach(sw, mtu), detach(), start(),
//   stop(), kick(), resetHeads(), receive(frame), route(frame) -> { queue, hash? } | null, egress(frame),
//   info(), close()
//
// A NIC without a tail page (-1) only answers route(): the VF's filters and RSS for a TypeScript path
// that runs the rings itself; it can neither start nor join a switch.
#include <sys/mman.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/args.h"
#include "base/errors.h"
#include "base/fault_injection.h"
#include "base/js_callback.h"
#include "base/lock_order.h"
#include "base/uv_lock.h"
#include "base/watchdog.h"
#include "dataplane/bindings.h"
#include "iavf/iavf_vectors_binding.h"
#include "memory/memory_lock.h"

namespace emu {
namespace dataplane {

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
    std::shared_ptr<PlaneCore> plane = PlaneCoreOf(info[0]);
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
    plane_ = plane;
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
    UnlistNic(nic_.get());
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
    std::shared_ptr<SwitchCore> sw;
    std::shared_ptr<PlaneCore> sw_plane;
    if (!SwitchCoreOf(info[0], &sw, &sw_plane)) return ThrowTypeError(env, "expected a NativeSwitch");
    if (!ArgInt(info, 1, 68, 65535, &mtu)) return env.Undefined();
    if (sw_plane != plane_) return ThrowTypeError(env, "the switch belongs to another data plane");
    if (nic_->tails == nullptr) return ThrowTypeError(env, "a NIC without a tail page cannot join a switch");
    if (nic_->Attached()) return ThrowTypeError(env, "the NIC is attached already");
    int id;
    {
      UvLock lock(&sw->mutex, lock_order::kSwitch);
      SwitchCore* core = sw.get();
      core->ports.push_back({});
      SwitchCore::Port& port = core->ports.back();
      port.attached = true;
      port.mtu = static_cast<uint32_t>(mtu);
      port.nic = nic_.get();
      id = static_cast<int>(core->ports.size() - 1);
      nic_->sw = sw;
      nic_->port = id;
    }
    switch_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    return Napi::Number::New(env, id);
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    if (nic_) {
      UnlistNic(nic_.get());  // out of the worker first: it polls only attached NICs
      DetachLocked();
    }
    return info.Env().Undefined();
  }

  // start(): the worker walks this NIC's TX rings; stop(): it no longer does (returns once it is out).
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!Alive(info.Env())) return info.Env().Undefined();
    if (nic_->tails == nullptr) return ThrowTypeError(info.Env(), "a NIC without a tail page cannot start");
    const int r = ListNic(plane_.get(), nic_.get());
    if (r < 0) return ThrowErrno(info.Env(), -r, "uv_thread_create");
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (nic_) UnlistNic(nic_.get());
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
      if (nic_->native && nic_->tails != nullptr) done = dataplane::Receive(nic_.get(), frame, length);
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

};

Napi::FunctionReference* IavfNic::constructor = nullptr;

Napi::Function DefineIavfNic(Napi::Env env) { return IavfNic::Define(env); }

void DeliverEvents(IavfNic* nic, Napi::Env env) { nic->DeliverEvents(env); }

}  // namespace dataplane
}  // namespace emu
