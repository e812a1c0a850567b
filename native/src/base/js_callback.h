// JsCallback: a JS function that native event sources (Poller, DoorbellWatcher) call from the Node
// event loop, with the rules both need in one place:
// - each call goes through napi_make_callback, which sets up the async context and runs
//   process.nextTick and promise jobs queued by the callback, as for any libuv-driven callback;
// - a call during Node's teardown (a wake-up still queued in CleanupHandles) cannot reach JS and is
//   dropped, where node-addon-api's MakeCallback would make it a fatal error;
// - a throwing callback is an uncaught exception, as for Node's own handles (left pending, Node-API
//   would swallow it);
// - Drop() from inside the callback (close() called by it) waits until the callback has returned,
//   since the async context is in use until then.
// Dropping matters: the callback usually closes over the owner, which holds the native object;
// releasing the persistent edge of that cycle lets both be collected.
#pragma once

#include <napi.h>

#include <initializer_list>
#include <memory>

namespace emu {

class JsCallback {
 public:
  void Set(Napi::Env env, Napi::Function fn, const char* resource_name, Napi::Object resource) {
    fn_ = Napi::Persistent(fn);
    context_ = std::make_unique<Napi::AsyncContext>(env, resource_name, resource);
  }

  bool Empty() const { return fn_.IsEmpty(); }

  void Call(Napi::Env env, Napi::Object receiver, std::initializer_list<napi_value> args) {
    if (fn_.IsEmpty()) return;
    napi_value result;
    in_call_ = true;
    napi_status status =
        napi_make_callback(env, *context_, receiver, fn_.Value(), args.size(), args.begin(), &result);
    in_call_ = false;
    if (drop_after_call_) Release();
    if (env.IsExceptionPending()) napi_fatal_exception(env, env.GetAndClearPendingException().Value());
    (void)status;  // napi_cannot_run_js during teardown: the call is dropped
  }

  void Drop() {
    if (in_call_) {
      drop_after_call_ = true;
    } else {
      Release();
    }
  }

 private:
  void Release() {
    fn_.Reset();
    context_.reset();
  }

  Napi::FunctionReference fn_;
  std::unique_ptr<Napi::AsyncContext> context_;
  bool in_call_ = false;
  bool drop_after_call_ = false;
};

}  // namespace emu
