// NativeSwitch, the JavaScript object of a switch whose forwarding is native (core.h):
//
//   new NativeSwitch(plane, { agingMs, maxMacs, now, onEscape(ports: number[], frames: Buffer[], copies: boolean[]) })
//   sw.addPort(mtu), removePort(id), forward(from, frame, now), lookup(mac, now), macTable(now),
//   counters(), portCounters(id), setMirror(id, on), flush(), close()
#include <uv.h>

#include <deque>
#include <vector>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "base/lock_order.h"
#include "base/uv_lock.h"
#include "base/wake_up.h"
#include "dataplane/bindings.h"

namespace emu {
namespace dataplane {
namespace {

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
    std::shared_ptr<PlaneCore> plane = PlaneCoreOf(info[0]);
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
    plane_ = plane;
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
    UnbindSwitch(plane_.get(), core_.get());
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
    if (nic != nullptr) DeliverEvents(nic, env);
  }
}

}  // namespace

Napi::Function DefineNativeSwitch(Napi::Env env) { return NativeSwitch::Define(env); }

bool SwitchCoreOf(Napi::Value v, std::shared_ptr<SwitchCore>* core, std::shared_ptr<PlaneCore>* plane) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(NativeSwitch::constructor->Value())) return false;
  NativeSwitch* sw = NativeSwitch::Unwrap(v.As<Napi::Object>());
  *core = sw->core();
  *plane = sw->plane();
  return true;
}

}  // namespace dataplane
}  // namespace emu
