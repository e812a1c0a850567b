// DataPlane, the JavaScript object that owns the worker threads (core.h):
//
//   new DataPlane({ burst, workers, minSleepUs, busyPolls, warmSleepUs, warmMs, maxSleepUs })
//   plane.stats() -> { running, nics, polls, frames, workers: [...] }; plane.close()
//
// and the module's data plane exports: the classes and the layout of an IavfNic's `state`.
#include "base/args.h"
#include "base/errors.h"
#include "base/lock_order.h"
#include "base/uv_lock.h"
#include "dataplane/bindings.h"
#include "module.h"

namespace emu {
namespace dataplane {
namespace {

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

}  // namespace

Napi::Function DefineDataPlane(Napi::Env env) { return DataPlane::Define(env); }

std::shared_ptr<PlaneCore> PlaneCoreOf(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(DataPlane::constructor->Value())) return nullptr;
  return DataPlane::Unwrap(v.As<Napi::Object>())->core();
}

}  // namespace dataplane

void InitDataPlane(Napi::Env env, Napi::Object exports) {
  using namespace dataplane;
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
  exports.Set("DataPlane", dataplane::DefineDataPlane(env));
  exports.Set("NativeSwitch", dataplane::DefineNativeSwitch(env));
  exports.Set("IavfNic", dataplane::DefineIavfNic(env));
}

}  // namespace emu
