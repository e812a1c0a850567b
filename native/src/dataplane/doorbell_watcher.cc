// DoorbellWatcher: a native thread that watches doorbell words (e.g. the iavf TX tail registers that a
// guest writes straight into a shared page of BAR0) and tells JS which ones moved.
//
//   new DoorbellWatcher(fd, fileOffset, words, callback(mask),
//                       { minSleepUs, busyPolls, warmSleepUs, warmMs, maxSleepUs })
//   start(); stop(); close(); stats(): { polls, notifications, running }
//
// The thread maps [fileOffset, fileOffset + 4 * words) of fd itself (read-only, shared), so it never
// touches memory JS can unmap, and never touches guest memory at all: it compares each word with the
// value it last saw and, on a change, ORs the word's bit into a pending mask and wakes the JS loop with
// uv_async_send. JS gets callback(mask) on its own thread and does the work there, synchronously,
// where a DMA_UNMAP cannot overlap it. Polling is adaptive: every minSleepUs right after a doorbell;
// after busyPolls quiet polls the interval doubles, up to warmSleepUs while the last doorbell is less
// than warmMs old (a guest between packets) and up to maxSleepUs after that (an idle guest). The sleep
// thus tracks the time since the last doorbell, and a doorbell waits at most about that long to be
// seen. stop() wakes the thread at once (a condition variable, not a sleep) and joins it; it never
// waits for more than one poll.
//
// Threads, mutexes and condition variables are libuv's (exported by Node): they are pthreads, but
// linking them from Node rather than glibc keeps the prebuild's glibc floor where it was.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "base/uv_lock.h"
#include "base/wake_up.h"
#include "module.h"

namespace emu {
namespace {

constexpr uint32_t kMaxWords = 32;

class DoorbellWatcher : public Napi::ObjectWrap<DoorbellWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DoorbellWatcher",
                       {
                           InstanceMethod<&DoorbellWatcher::Start>("start"),
                           InstanceMethod<&DoorbellWatcher::Stop>("stop"),
                           InstanceMethod<&DoorbellWatcher::Close>("close"),
                           InstanceMethod<&DoorbellWatcher::Stats>("stats"),
                       });
  }

  explicit DoorbellWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DoorbellWatcher>(info) {
    Napi::Env env = info.Env();
    int fd;
    int64_t offset, words;
    if (!ArgFd(info, 0, &fd) || !ArgInt(info, 1, 0, INT64_C(1) << 40, &offset) ||
        !ArgInt(info, 2, 1, kMaxWords, &words)) {
      return;
    }
    if (!info[3].IsFunction()) {
      ThrowTypeError(env, "expected a callback");
      return;
    }
    if (offset % 4 != 0) {
      ThrowTypeError(env, "fileOffset must be a multiple of 4");
      return;
    }
    if (info[4].IsObject()) {
      Napi::Object o = info[4].As<Napi::Object>();
      auto read = [&](const char* key, int64_t min, int64_t max, int64_t* out) {
        Napi::Value v = o.Get(key);
        if (v.IsUndefined()) return true;
        if (!v.IsNumber()) return false;
        double d = v.As<Napi::Number>().DoubleValue();
        if (!(d >= min && d <= max)) return false;
        *out = static_cast<int64_t>(d);
        return true;
      };
      if (!read("minSleepUs", 1, 1000000, &min_sleep_us_) || !read("maxSleepUs", 1, 1000000, &max_sleep_us_) ||
          !read("busyPolls", 0, 1000000, &busy_polls_) || !read("warmSleepUs", 1, 1000000, &warm_sleep_us_) ||
          !read("warmMs", 0, 1000000, &warm_ms_) || max_sleep_us_ < min_sleep_us_) {
        ThrowTypeError(env, "bad polling options");
        return;
      }
    }
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t aligned = static_cast<uint64_t>(offset) & ~(page - 1);
    map_size_ = static_cast<size_t>(offset - aligned) + static_cast<size_t>(words) * 4;
    void* base = mmap(nullptr, map_size_, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(aligned));
    if (base == MAP_FAILED) {
      ThrowErrno(env, errno, "mmap");
      return;
    }
    map_ = base;
    words_ptr_ = reinterpret_cast<const uint32_t*>(static_cast<uint8_t*>(base) + (offset - aligned));
    words_ = static_cast<uint32_t>(words);
    seen_.assign(words_, 0);

    uv_async_t* async = OpenWakeUp(env, OnAsync, this);
    if (async == nullptr) return;
    async_ = async;
    uv_mutex_init(&mutex_);
    uv_cond_init(&cond_);
    sync_ready_ = true;
    callback_.Set(env, info[3].As<Napi::Function>(), "EmuDoorbellWatcher", info.This().As<Napi::Object>());
    env_ = env;
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hook_ = true;
  }

  ~DoorbellWatcher() override {
    StopThread(false);
    if (hook_) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    Release();
    if (sync_ready_) {
      uv_cond_destroy(&cond_);
      uv_mutex_destroy(&mutex_);
    }
  }

 private:
  static void CleanupHook(void* arg) {
    auto* self = static_cast<DoorbellWatcher*>(arg);
    self->hook_ = false;
    self->StopThread(false);
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (map_ == nullptr || async_ == nullptr) return ThrowErrno(env, EBADF, "start");
    if (running_) return env.Undefined();
    // What is there now is not news: only later writes are.
    for (uint32_t i = 0; i < words_; i++) seen_[i] = __atomic_load_n(&words_ptr_[i], __ATOMIC_ACQUIRE);
    stop_.store(false);
    int r = uv_thread_create(&thread_, Run, this);
    if (r < 0) return ThrowErrno(env, -r, "uv_thread_create");
    running_ = true;
    Ref();  // the JS object stays alive while its thread runs
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopThread();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopThread();
    Release();
    callback_.Drop();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("polls", Napi::Number::New(env, static_cast<double>(polls_.load())));
    o.Set("notifications", Napi::Number::New(env, static_cast<double>(notifications_.load())));
    o.Set("running", Napi::Boolean::New(env, running_));
    return o;
  }

  // unref: drop the strong reference Start() took (not from the destructor: the object is going).
  void StopThread(bool unref = true) {
    if (!running_) return;
    {
      UvLock lock(&mutex_, lock_order::kLeaf);
      stop_.store(true);
      uv_cond_signal(&cond_);
    }
    uv_thread_join(&thread_);
    running_ = false;
    if (unref) Unref();
  }

  void Release() {
    if (async_ != nullptr) {
      CloseWakeUp(async_);
      async_ = nullptr;
    }
    if (map_ != nullptr) {
      munmap(map_, map_size_);
      map_ = nullptr;
      words_ptr_ = nullptr;
    }
  }

  static void Run(void* arg) {
    auto* self = static_cast<DoorbellWatcher*>(arg);
    // Sleeps of a few microseconds need a timer slack below the default 50 us.
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    self->Loop();
  }

  void Loop() {
    const uint64_t min_ns = static_cast<uint64_t>(min_sleep_us_) * 1000;
    const uint64_t max_ns = static_cast<uint64_t>(max_sleep_us_) * 1000;
    const uint64_t warm_cap_ns = std::min(std::max(static_cast<uint64_t>(warm_sleep_us_) * 1000, min_ns), max_ns);
    const uint64_t warm_ns = static_cast<uint64_t>(warm_ms_) * 1000000;
    uint64_t sleep_ns = min_ns;
    uint64_t last_ring = uv_hrtime();
    int64_t quiet = 0;
    while (!stop_.load(std::memory_order_acquire)) {
      uint32_t changed = 0;
      for (uint32_t i = 0; i < words_; i++) {
        uint32_t v = __atomic_load_n(&words_ptr_[i], __ATOMIC_ACQUIRE);
        if (v != seen_[i]) {
          seen_[i] = v;
          changed |= 1u << i;
        }
      }
      polls_.fetch_add(1, std::memory_order_relaxed);
      if (changed != 0) {
        pending_.fetch_or(changed, std::memory_order_acq_rel);
        notifications_.fetch_add(1, std::memory_order_relaxed);
        uv_async_send(async_);
        quiet = 0;
        sleep_ns = min_ns;
        last_ring = uv_hrtime();
      } else if (++quiet > busy_polls_) {
        const uint64_t cap = uv_hrtime() - last_ring < warm_ns ? warm_cap_ns : max_ns;
        sleep_ns = std::min(sleep_ns * 2, cap);
      }
      UvLock lock(&mutex_, lock_order::kLeaf);
      if (!stop_.load(std::memory_order_acquire)) uv_cond_timedwait(&cond_, &mutex_, sleep_ns);
    }
  }

  // A libuv callback: nothing may throw out of it (contain.h).
  static void OnAsync(uv_async_t* handle) {
    Contained("doorbell callback", [&] { Notify(handle); });
  }

  static void Notify(uv_async_t* handle) {
    auto* self = static_cast<DoorbellWatcher*>(handle->data);
    if (self == nullptr || self->callback_.Empty()) return;
    const uint32_t mask = self->pending_.exchange(0, std::memory_order_acq_rel);
    if (mask == 0) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();
    self->callback_.Call(env, receiver, {Napi::Number::New(env, mask)});
  }

  napi_env env_ = nullptr;
  bool hook_ = false;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint32_t* words_ptr_ = nullptr;
  uint32_t words_ = 0;
  std::vector<uint32_t> seen_;  // the thread's alone while it runs
  // Defaults measured with two TCG guests on a 2-CPU host (README): short busy polls, a warm cap that
  // keeps ping latency near the trapped doorbell's, 1 ms when idle.
  int64_t min_sleep_us_ = 20;
  int64_t busy_polls_ = 8;
  int64_t warm_sleep_us_ = 250;
  int64_t warm_ms_ = 100;
  int64_t max_sleep_us_ = 1000;
  uv_async_t* async_ = nullptr;
  uv_thread_t thread_{};
  uv_mutex_t mutex_{};
  uv_cond_t cond_{};
  bool sync_ready_ = false;
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> pending_{0};
  std::atomic<uint64_t> polls_{0};
  std::atomic<uint64_t> notifications_{0};
  JsCallback callback_;
};

}  // namespace

void InitDoorbellWatcher(Napi::Env env, Napi::Object exports) {
  exports.Set("DoorbellWatcher", DoorbellWatcher::Define(env));
}

}  // namespace emu
