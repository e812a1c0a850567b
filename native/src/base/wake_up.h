// A wake-up from a native thread to the JS loop: a uv_async_t that never keeps the process alive on
// its own (the devices' sockets do that), heap-allocated because uv_close completes later, possibly
// after its owner is gone.
#pragma once

#include <napi.h>
#include <uv.h>

#include "base/errors.h"

namespace emu {

// A wake-up calling cb(handle) on the loop, handle->data = data; nullptr after throwing.
inline uv_async_t* OpenWakeUp(Napi::Env env, uv_async_cb cb, void* data) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    Napi::Error::New(env, "no libuv loop").ThrowAsJavaScriptException();
    return nullptr;
  }
  auto* async = new uv_async_t;
  const int r = uv_async_init(loop, async, cb);
  if (r < 0) {
    delete async;
    ThrowErrno(env, -r, "uv_async_init");
    return nullptr;
  }
  async->data = data;
  uv_unref(reinterpret_cast<uv_handle_t*>(async));
  return async;
}

// Closes it: a wake-up still queued finds data == nullptr; freed once libuv is done with it.
inline void CloseWakeUp(uv_async_t* async) {
  async->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(async), [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
}

}  // namespace emu
