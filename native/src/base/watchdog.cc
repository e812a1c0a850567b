// The stall detector (watchdog.h), and its binding:
//
//   new Watchdog({ thresholdMs, onStalls(reports) }); label(text) -> id; unlabel(id); close()
//   watchdogActivity: Int32Array(1), the label id of what the JS thread is doing (0: between tasks)
//   watchdogStats() -> { [thread]: stalls }
//
// Report: { thread, doing, subject, ms, ended }.
#include "base/watchdog.h"

#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "base/contain.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "base/lock_order.h"
#include "base/wake_up.h"
#include "module.h"

namespace emu {
namespace watchdog {

namespace {

constexpr size_t kMaxReports = 64;  // waiting for JavaScript; more are counted only
constexpr uint64_t kCheckNs = 250'000'000;
constexpr const char* kEventLoop = "event loop";

// What the JS thread is doing: a label id it stores without a call (watchdogActivity).
alignas(8) int32_t js_activity[2] = {0, 0};

struct Report {
  std::string thread;
  std::string doing;
  std::string subject;
  double ms = 0;
  bool ended = false;
};

}  // namespace

class Monitor {
 public:
  static Monitor& Get() {
    static Monitor* m = new Monitor();  // never destroyed: beats may outlive statics
    return *m;
  }

  void Add(Beat* b) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    beats_.insert(b);
  }
  void Remove(Beat* b) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    beats_.erase(b);
  }

  uint64_t Label(const std::string& text) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    const uint64_t id = next_label_++;
    labels_[id] = text;
    return id;
  }
  void Unlabel(uint64_t id) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    labels_.erase(id);
  }

  // JS thread: the loop turned (its timer).
  void JsBeat() { js_beat_.store(SteadyNowNs(), std::memory_order_release); }

  // A user starts the monitor (the first one's threshold holds); `wake` is called (from the monitor's
  // thread) when reports wait. Each Start has its Stop, with the id Start returned.
  uint64_t Start(uint64_t threshold_ns, std::function<void()> wake) {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    const uint64_t id = next_user_++;
    wakes_[id] = std::move(wake);
    if (running_) return id;
    threshold_ns_ = threshold_ns;
    stop_ = false;
    js_beat_.store(SteadyNowNs(), std::memory_order_release);
    js_reported_ = 0;
    try {
      thread_ = std::thread([this] { Loop(); });
    } catch (...) {
      wakes_.erase(id);
      throw;
    }
    running_ = true;
    return id;
  }

  void Stop(uint64_t user) {
    std::thread done;
    {
      lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
      wakes_.erase(user);
      if (!running_ || !wakes_.empty()) return;
      stop_ = true;
      done.swap(thread_);
      running_ = false;
    }
    cond_.notify_all();
    done.join();
  }

  std::deque<Report> Take() {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    std::deque<Report> out;
    out.swap(reports_);
    return out;
  }

  std::map<std::string, double> Counts() {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kLeaf);
    return counts_;
  }

 private:
  Monitor() = default;

  std::string LabelLocked(uint64_t id) const {
    if (id == 0) return "";
    auto it = labels_.find(id);
    return it == labels_.end() ? "(gone)" : it->second;
  }

  // Mutex held.
  void PushLocked(Report r) {
    if (!r.ended) counts_[r.thread]++;
    if (reports_.size() < kMaxReports) reports_.push_back(std::move(r));
  }

  void Loop() {
    prctl(PR_SET_NAME, "emu-watchdog", 0, 0, 0);
    lock_order::UniqueGuard<std::mutex> lock(mutex_, lock_order::kLeaf);
    while (!stop_) {
      cond_.wait_for(lock.held(), std::chrono::nanoseconds(kCheckNs));
      if (stop_) break;
      const size_t before = reports_.size();
      std::string line;
      Contained("stall detector", [&] { CheckLocked(&line); });
      if (reports_.size() != before) {
        for (auto& [id, wake] : wakes_) wake();
      }
      if (line.empty()) continue;
      // Outside the mutex: stderr may be a pipe that is slow to drain.
      lock.unlock();
      std::fputs(line.c_str(), stderr);
      std::fflush(stderr);
      lock.lock();
    }
  }

  // `line`: what to write to stderr for a stall of the event loop, which cannot log it itself.
  void CheckLocked(std::string* line) {
    const uint64_t now = SteadyNowNs();
    for (Beat* b : beats_) {
      const uint64_t since = b->since_.load(std::memory_order_acquire);
      // A unit that began after `now` was read is no stall (now - since would wrap around).
      if (since != 0 && since < now && since != b->reported_ && now - since > threshold_ns_) {
        b->reported_ = since;
        const char* doing = b->doing_.load(std::memory_order_relaxed);
        PushLocked({b->thread_, doing != nullptr ? doing : "", LabelLocked(b->subject_.load(std::memory_order_relaxed)),
                    static_cast<double>(now - since) / 1e6, false});
      } else if (b->reported_ != 0 && since != b->reported_) {
        PushLocked({b->thread_, "", "", static_cast<double>(now - b->reported_) / 1e6, true});
        b->reported_ = 0;
      }
    }
    const uint64_t js = js_beat_.load(std::memory_order_acquire);
    const std::string activity = LabelLocked(static_cast<uint64_t>(js_activity[0]));
    if (js < now && js != js_reported_ && now - js > threshold_ns_) {
      js_reported_ = js;
      const double ms = static_cast<double>(now - js) / 1e6;
      // JavaScript cannot log now: the monitor does, once per stall (in emu's log format).
      char text[512];
      std::snprintf(text, sizeof(text), "emu warn: the event loop has not turned for %.0f ms (in: %s)\n", ms,
                    activity.empty() ? "between tasks" : activity.c_str());
      *line = text;
      PushLocked({kEventLoop, "", activity, ms, false});
    } else if (js_reported_ != 0 && js != js_reported_) {
      PushLocked({kEventLoop, "", "", static_cast<double>(js - js_reported_) / 1e6, true});
      js_reported_ = 0;
    }
  }

  std::mutex mutex_;
  std::condition_variable cond_;
  std::set<Beat*> beats_;
  std::map<uint64_t, std::string> labels_;
  uint64_t next_label_ = 1;
  std::deque<Report> reports_;
  std::map<std::string, double> counts_;
  std::atomic<uint64_t> js_beat_{0};
  uint64_t js_reported_ = 0;
  uint64_t threshold_ns_ = 1'000'000'000;
  std::map<uint64_t, std::function<void()>> wakes_;
  uint64_t next_user_ = 1;
  std::thread thread_;
  bool running_ = false;
  bool stop_ = false;
};

Beat::Beat(std::string thread) : thread_(std::move(thread)) { Monitor::Get().Add(this); }
Beat::~Beat() { Monitor::Get().Remove(this); }

uint64_t Label(const std::string& text) { return Monitor::Get().Label(text); }
void Unlabel(uint64_t id) { Monitor::Get().Unlabel(id); }

namespace {

class WatchdogJs : public Napi::ObjectWrap<WatchdogJs> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Watchdog",
                       {
                           InstanceMethod<&WatchdogJs::LabelJs>("label"),
                           InstanceMethod<&WatchdogJs::UnlabelJs>("unlabel"),
                           InstanceMethod<&WatchdogJs::Close>("close"),
                       });
  }

  explicit WatchdogJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WatchdogJs>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject() || !info[0].As<Napi::Object>().Get("onStalls").IsFunction()) {
      ThrowTypeError(env, "expected { thresholdMs, onStalls }");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    const double threshold_ms = o.Get("thresholdMs").IsNumber() ? o.Get("thresholdMs").As<Napi::Number>().DoubleValue() : 1000;
    if (!(threshold_ms >= 10 && threshold_ms <= 3600000)) {
      ThrowTypeError(env, "thresholdMs must be 10 to 3600000");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      ThrowTypeError(env, "no libuv loop");
      return;
    }
    wake_ = OpenWakeUp(env, [](uv_async_t* h) { Contained("stall reports", [&] { Deliver(h); }); }, this);
    if (wake_ == nullptr) return;
    on_stalls_.Set(env, o.Get("onStalls").As<Napi::Function>(), "EmuWatchdog", info.This().As<Napi::Object>());
    uv_async_t* wake = wake_;
    try {
      user_ = Monitor::Get().Start(static_cast<uint64_t>(threshold_ms * 1e6), [wake] { uv_async_send(wake); });
    } catch (...) {
      CloseWakeUp(wake_);
      wake_ = nullptr;
      throw;
    }
    // The loop's heartbeat: a timer that never keeps the process alive.
    timer_ = new uv_timer_t;
    uv_timer_init(loop, timer_);
    uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
    const uint64_t period = static_cast<uint64_t>(threshold_ms / 4 < 100 ? threshold_ms / 4 : 100);
    uv_timer_start(timer_, [](uv_timer_t*) { Monitor::Get().JsBeat(); }, period, period);
    open_ = true;
  }

  ~WatchdogJs() override { Shut(); }

 private:
  static void Deliver(uv_async_t* h) {
    auto* self = static_cast<WatchdogJs*>(h->data);
    if (self == nullptr || self->on_stalls_.Empty()) return;
    std::deque<Report> reports = Monitor::Get().Take();
    if (reports.empty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Array list = Napi::Array::New(env, reports.size());
    uint32_t i = 0;
    for (const Report& r : reports) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("thread", r.thread);
      o.Set("doing", r.doing);
      o.Set("subject", r.subject);
      o.Set("ms", r.ms);
      o.Set("ended", r.ended);
      list.Set(i++, o);
    }
    self->on_stalls_.Call(env, self->Value(), {list});
  }

  void Shut() {
    if (!open_) return;
    open_ = false;
    Monitor::Get().Stop(user_);
    uv_timer_stop(timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
    CloseWakeUp(wake_);
    wake_ = nullptr;
    on_stalls_.Drop();
  }

  Napi::Value LabelJs(const Napi::CallbackInfo& info) {
    if (!info[0].IsString()) return ThrowTypeError(info.Env(), "expected a label");
    return Napi::Number::New(info.Env(), static_cast<double>(Label(info[0].As<Napi::String>().Utf8Value())));
  }

  Napi::Value UnlabelJs(const Napi::CallbackInfo& info) {
    if (info[0].IsNumber()) Unlabel(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    return info.Env().Undefined();
  }

  bool open_ = false;
  uint64_t user_ = 0;
  uv_async_t* wake_ = nullptr;
  uv_timer_t* timer_ = nullptr;
  JsCallback on_stalls_;
};

// Labels without a Watchdog object (what the JS thread does is labelled whether or not one runs).
Napi::Value LabelFn(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) return ThrowTypeError(info.Env(), "expected a label");
  return Napi::Number::New(info.Env(), static_cast<double>(Label(info[0].As<Napi::String>().Utf8Value())));
}

Napi::Value StatsFn(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  for (const auto& [thread, n] : Monitor::Get().Counts()) o.Set(thread, n);
  return o;
}

}  // namespace
}  // namespace watchdog

void InitWatchdog(Napi::Env env, Napi::Object exports) {
  exports.Set("Watchdog", watchdog::WatchdogJs::Define(env));
  exports.Set("watchdogLabel", Napi::Function::New(env, watchdog::LabelFn, "watchdogLabel"));
  exports.Set("watchdogStats", Napi::Function::New(env, watchdog::StatsFn, "watchdogStats"));
  // The JS thread's activity word: static memory, never freed.
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, watchdog::js_activity, sizeof(watchdog::js_activity));
  exports.Set("watchdogActivity", Napi::Int32Array::New(env, 1, ab, 0));
}

}  // namespace emu
