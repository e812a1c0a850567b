// Poller: an fd watched by a libuv uv_poll_t on the Node event loop, so readiness wakes JS
// without threads or busy polling.
//
//   new Poller(fd, callback(errno, events)); start(events); stop(); close()
//
// events are UV_READABLE | UV_WRITABLE (exported as pollReadable / pollWritable). errno is 0, or
// positive when libuv reports an error; libuv has then stopped the handle (EPOLLERR comes through
// as EBADF, whatever the socket's real error: callers ask SO_ERROR / try the read).
#include <uv.h>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "module.h"

namespace emu {
namespace {

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {
                           InstanceMethod<&Poller::Start>("start"),
                           InstanceMethod<&Poller::Stop>("stop"),
                           InstanceMethod<&Poller::Close>("close"),
                       });
  }

  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    int fd;
    if (!ArgFd(info, 0, &fd)) return;
    if (!info[1].IsFunction()) {
      ThrowTypeError(env, "expected a callback");
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
      Napi::Error::New(env, "no libuv loop").ThrowAsJavaScriptException();
      return;
    }
    // Heap-allocated: uv_close completes asynchronously, possibly after this object is gone.
    auto* handle = new uv_poll_t;
    int r = uv_poll_init(loop, handle, fd);
    if (r < 0) {
      delete handle;
      ThrowErrno(env, -r, "epoll_ctl");
      return;
    }
    handle->data = this;
    handle_ = handle;
    callback_.Set(env, info[1].As<Napi::Function>(), "EmuPoller", info.This().As<Napi::Object>());
  }

  ~Poller() override { Release(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t events;
    if (!ArgInt(info, 0, 0, UV_READABLE | UV_WRITABLE, &events)) return env.Undefined();
    if (handle_ == nullptr) return ThrowErrno(env, EBADF, "uv_poll_start");
    int r = uv_poll_start(handle_, static_cast<int>(events), OnPoll);
    if (r < 0) return ThrowErrno(env, -r, "epoll_ctl");
    // While watching, the JS object (and through its callback, whoever owns it) must stay alive.
    if (!active_) {
      active_ = true;
      Ref();
    }
    return env.Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopWatching();
    return info.Env().Undefined();
  }

  // Stops and releases the handle; the fd itself belongs to the caller, who closes it after this.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    callback_.Drop();
    return info.Env().Undefined();
  }

  void StopWatching() {
    if (handle_ != nullptr) uv_poll_stop(handle_);
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  void Release() {
    StopWatching();
    if (handle_ != nullptr) {
      handle_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(handle_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      handle_ = nullptr;
    }
  }

  // A libuv callback: nothing may throw out of it (contain.h).
  static void OnPoll(uv_poll_t* handle, int status, int events) {
    Contained("poll callback", [&] { Poll(handle, status, events); });
  }

  static void Poll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Poller*>(handle->data);
    if (self == nullptr || self->callback_.Empty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();  // keeps the object alive through the callback
    if (status < 0 && self->active_) {
      // libuv stopped the handle itself; mirror that so a later start() re-arms it.
      self->active_ = false;
      self->Unref();
    }
    self->callback_.Call(env, receiver,
                         {Napi::Number::New(env, status < 0 ? -status : 0), Napi::Number::New(env, events)});
  }

  uv_poll_t* handle_ = nullptr;
  JsCallback callback_;
  bool active_ = false;
};

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("Poller", Poller::Define(env));
  exports.Set("pollReadable", Napi::Number::New(env, UV_READABLE));
  exports.Set("pollWritable", Napi::Number::New(env, UV_WRITABLE));
}

}  // namespace emu
