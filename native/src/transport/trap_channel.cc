// TrapChannel: a vfio-user connection whose socket native code reads, frames and writes: the one
// framer of emu's connections (message_framer.h), and on a server, register accesses in memory-backed
// areas answered at socket speed, without the JS event loop.
//
//   new TrapChannel(fd, callback(), { maxQueuedBytes, maxMessageSize, maxMessageFds, label, owner })
//   write(data, fds) -> 0 | -errno; take() -> { frames: [{ kind, bytes, fds, excess }], seq, end, errno,
//   drained, reading }; ack(seq); pause(); resume(); setAreas([{ region, offset, size, readable,
//   writable, fd, fileOffset | registers }]); queuedBytes(); heldFds(); stats() -> { servedReads,
//   servedWrites }; settle() -> reading; close()
//
// One socket thread (epoll) serves every channel of the process. For each readable channel it reads,
// frames the stream and answers a REGION_READ / REGION_WRITE itself when all of this holds: it lies
// wholly inside one area given by setAreas (memory the device shares with the client through sparse
// mmap, mapped here by the channel itself; or a native RegisterBlock, whose registers have effects,
// such as iavf's interrupt re-arm), moves 1, 2, 4 or 8 naturally aligned bytes, carries no fds, and
// nothing earlier is still with JavaScript. "Still with JavaScript" is counted in deliveries: take()
// hands out every message framed so far under a sequence number, and JavaScript acks it once it has
// handled those messages; until then accesses are passed on in order, and JavaScript serves them from
// the same memory. So no reply ever overtakes an earlier message's. Without areas (a client's
// connection) every message goes to JavaScript.
//
// Two threads read, through the same framer under one mutex. The socket thread takes only complete
// trapped accesses, one by one (it peeks at each header first), and only while nothing is with
// JavaScript; it leaves every other byte in the socket. The JS thread watches the socket too (a
// uv_poll in lib/trap-channel.ts) and reads everything (settle()): a message for JavaScript thus costs
// no hop through another thread, and an access the JS thread happens to read is answered by the same
// native code. While the event loop is busy, the socket thread answers accesses alone.
//
// Writes from JavaScript and the thread's replies share one output queue, in order. Reading stops
// while JavaScript pauses, while the queue holds more than maxQueuedBytes (a peer that does not read
// its replies) and while more than kMaxPassedOn bytes of messages wait for JavaScript; a message
// arriving is held up to maxMessageSize, and fds up to maxMessageFds: every queue is bounded.
// Threads and mutexes are libuv's, as in doorbell_watcher.cc.
//
// Files: socket_thread.* (the thread), connection_core.h (one connection's state and work),
// message_framer.* (the framer), and this one (the JavaScript class).
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <vector>

#include "base/args.h"
#include "base/contain.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "base/wake_up.h"
#include "base/watchdog.h"
#include "module.h"
#include "os/fd_passing.h"
#include "transport/connection_core.h"
#include "transport/socket_thread.h"
#include "transport/vfio_user_wire.h"

namespace emu {
namespace {

using connection::Area;
using connection::ConnectionCore;
using connection::kMaxAreas;

class TrapChannel : public Napi::ObjectWrap<TrapChannel> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TrapChannel",
                       {
                           InstanceMethod<&TrapChannel::WriteJs>("write"),
                           InstanceMethod<&TrapChannel::TakeJs>("take"),
                           InstanceMethod<&TrapChannel::AckJs>("ack"),
                           InstanceMethod<&TrapChannel::PauseJs>("pause"),
                           InstanceMethod<&TrapChannel::ResumeJs>("resume"),
                           InstanceMethod<&TrapChannel::SetAreasJs>("setAreas"),
                           InstanceMethod<&TrapChannel::QueuedBytesJs>("queuedBytes"),
                           InstanceMethod<&TrapChannel::HeldFdsJs>("heldFds"),
                           InstanceMethod<&TrapChannel::StatsJs>("stats"),
                           InstanceMethod<&TrapChannel::SettleJs>("settle"),
                           InstanceMethod<&TrapChannel::CloseJs>("close"),
                       });
  }

  explicit TrapChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrapChannel>(info) {
    Napi::Env env = info.Env();
    int fd;
    if (!ArgFd(info, 0, &fd)) return;
    if (!info[1].IsFunction()) {
      ThrowTypeError(env, "expected a callback");
      return;
    }
    if (!info[2].IsObject()) {
      ThrowTypeError(env, "expected options");
      return;
    }
    Napi::Object options = info[2].As<Napi::Object>();
    uint32_t max_queued = 4 << 20;
    uint32_t max_message, max_fds;
    if ((!options.Get("maxQueuedBytes").IsUndefined() &&
         !FieldU32(options, "maxQueuedBytes", UINT32_MAX, &max_queued)) ||
        !FieldU32(options, "maxMessageSize", UINT32_MAX, &max_message) || max_message < wire::kMaxTrapMessage ||
        !FieldU32(options, "maxMessageFds", kMaxFds, &max_fds)) {
      ThrowTypeError(env, "expected { maxQueuedBytes?, maxMessageSize (>= 40), maxMessageFds (<= 253) }");
      return;
    }
    wake_ = OpenWakeUp(env, OnAsync, this);
    if (wake_ == nullptr) return;
    // An open channel keeps the process alive, as a socket being read does.
    uv_ref(reinterpret_cast<uv_handle_t*>(wake_));
    callback_.Set(env, info[1].As<Napi::Function>(), "EmuTrapChannel", info.This().As<Napi::Object>());
    core_ = std::make_shared<ConnectionCore>(fd, max_queued, max_message, max_fds);
    core_->SetWake(wake_);
    // Its name for the stall detector and the closer (client_files.h): the owner's (a device's,
    // for every connection it serves), or one of its own from its label.
    if (options.Get("owner").IsNumber()) {
      core_->SetLabel(static_cast<uint64_t>(options.Get("owner").As<Napi::Number>().Int64Value()));
    } else if (options.Get("label").IsString()) {
      core_->SetLabel(watchdog::Label(options.Get("label").As<Napi::String>().Utf8Value()));
      owns_label_ = true;
    }
    uint64_t id;
    if (!SocketThread::Get().Add(core_, &id)) {
      const int err = errno;
      core_.reset();
      Release();
      ThrowErrno(env, err, "uv_thread_create");
      return;
    }
    core_->SetId(id);
    core_->SetPaused(false);  // starts watching
    Ref();                    // alive while open: the callback reaches its owner
    open_ = true;
  }

  ~TrapChannel() override {
    if (core_) {
      core_->Close();
      if (owns_label_) watchdog::Unlabel(core_->label());
    }
    Release();
  }

 private:
  // A libuv callback: nothing may throw out of it (contain.h).
  static void OnAsync(uv_async_t* handle) {
    Contained("vfio-user connection callback", [&] { Notify(handle); });
  }

  static void Notify(uv_async_t* handle) {
    auto* self = static_cast<TrapChannel*>(handle->data);
    if (self == nullptr || self->callback_.Empty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::Object receiver = self->Value();
    self->callback_.Call(env, receiver, {});
  }

  bool owns_label_ = false;

  void Release() {
    if (wake_ != nullptr) {
      CloseWakeUp(wake_);
      wake_ = nullptr;
    }
  }

  bool Open(Napi::Env env, const char* what) {
    if (core_ && open_) return true;
    ThrowErrno(env, EBADF, what);
    return false;
  }

  Napi::Value WriteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env, "write")) return env.Undefined();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      return ThrowTypeError(env, "expected a Uint8Array");
    }
    if (!info[1].IsArray()) return ThrowTypeError(env, "expected an array of fds");
    Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
    Napi::Array list = info[1].As<Napi::Array>();
    if (list.Length() > kMaxFds) return Napi::Number::New(env, -EINVAL);
    std::vector<int> fds(list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value v = list.Get(i);
      if (!v.IsNumber()) return ThrowTypeError(env, "expected an array of fds");
      fds[i] = v.As<Napi::Number>().Int32Value();
    }
    return Napi::Number::New(env, core_->Write(data.Data(), data.ByteLength(), fds));
  }

  Napi::Value TakeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array frames = Napi::Array::New(env);
    if (core_ && open_) {
      ConnectionCore::Taken t = core_->Take();
      uint32_t i = 0;
      for (MessageFramer::Frame& f : t.frames) {
        Napi::Object frame = Napi::Object::New(env);
        frame.Set("kind", kFrameKindNames[f.kind]);
        frame.Set("bytes", Napi::Buffer<uint8_t>::Copy(env, f.bytes.data(), f.bytes.size()));
        Napi::Array fds = Napi::Array::New(env, f.fds.size());
        for (uint32_t k = 0; k < f.fds.size(); k++) fds.Set(k, Napi::Number::New(env, f.fds[k]));
        frame.Set("fds", fds);
        frame.Set("excess", Napi::Number::New(env, f.excess));
        frames.Set(i++, frame);
      }
      o.Set("seq", Napi::Number::New(env, static_cast<double>(t.seq)));
      o.Set("end", Napi::Boolean::New(env, t.end));
      o.Set("errno", Napi::Number::New(env, t.err));
      o.Set("truncated", Napi::Boolean::New(env, t.err != 0 && core_->truncated()));
      o.Set("drained", Napi::Boolean::New(env, t.drained));
      o.Set("reading", Napi::Boolean::New(env, core_->Reading()));
    }
    o.Set("frames", frames);
    return o;
  }

  Napi::Value AckJs(const Napi::CallbackInfo& info) {
    int64_t seq;
    if (!ArgInt(info, 0, 0, INT64_C(1) << 53, &seq)) return info.Env().Undefined();
    if (core_ && open_) core_->Ack(static_cast<uint64_t>(seq));
    return info.Env().Undefined();
  }

  Napi::Value PauseJs(const Napi::CallbackInfo& info) {
    if (core_ && open_) core_->SetPaused(true);
    return info.Env().Undefined();
  }

  Napi::Value ResumeJs(const Napi::CallbackInfo& info) {
    if (core_ && open_) core_->SetPaused(false);
    return info.Env().Undefined();
  }

  // setAreas(list): replaces the areas answered natively; each is mapped here from its fd.
  Napi::Value SetAreasJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env, "setAreas")) return env.Undefined();
    if (!info[0].IsArray()) return ThrowTypeError(env, "expected an array of areas");
    Napi::Array list = info[0].As<Napi::Array>();
    if (list.Length() > kMaxAreas) return ThrowTypeError(env, "too many areas");
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    std::vector<Area> areas;
    auto fail = [&](int err, const char* what) {
      for (Area& a : areas) {
        if (a.map != nullptr) munmap(a.map, a.map_size);
      }
      return err == 0 ? ThrowTypeError(env, what) : ThrowErrno(env, err, what);
    };
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!list.Get(i).IsObject()) return fail(0, "expected an array of areas");
      Napi::Object o = list.Get(i).As<Napi::Object>();
      Area a;
      uint32_t fd = 0, size = 0;
      uint64_t file_offset = 0;
      if (!FieldU32(o, "region", 8, &a.region) || !FieldBigUint64(o, "offset", &a.offset) ||
          !FieldU32(o, "size", 1u << 30, &size) || size == 0) {
        return fail(0, "an area needs region, offset (bigint) and size");
      }
      a.size = size;
      a.readable = o.Get("readable").ToBoolean();
      a.writable = o.Get("writable").ToBoolean();
      Napi::Value registers = o.Get("registers");
      if (!registers.IsUndefined()) {
        a.registers = RegisterBlockOf(registers);
        if (!a.registers) return fail(0, "registers must be a native register block");
        areas.push_back(std::move(a));
        continue;
      }
      if (!FieldU32(o, "fd", INT32_MAX, &fd) || !FieldBigUint64(o, "fileOffset", &file_offset)) {
        return fail(0, "a memory area needs fd and fileOffset (bigint)");
      }
      if (file_offset % page != 0) return fail(0, "fileOffset must be page-aligned");
      a.map_size = size;
      void* map = mmap(nullptr, a.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd),
                       static_cast<off_t>(file_offset));
      if (map == MAP_FAILED) return fail(errno, "mmap");
      a.map = map;
      a.base = static_cast<uint8_t*>(map);
      areas.push_back(a);
    }
    core_->SetAreas(std::move(areas));
    return env.Undefined();
  }

  Napi::Value QueuedBytesJs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core_ && open_ ? static_cast<double>(core_->QueuedBytes()) : 0);
  }

  Napi::Value HeldFdsJs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), core_ && open_ ? static_cast<double>(core_->HeldFds()) : 0);
  }

  Napi::Value StatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("servedReads", Napi::Number::New(env, core_ ? static_cast<double>(core_->ServedReads()) : 0));
    o.Set("servedWrites", Napi::Number::New(env, core_ ? static_cast<double>(core_->ServedWrites()) : 0));
    return o;
  }

  Napi::Value SettleJs(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), core_ && open_ && core_->Settle());
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    if (open_) {
      open_ = false;
      core_->Close();
      Release();
      callback_.Drop();
      Unref();
    }
    return info.Env().Undefined();
  }

  std::shared_ptr<ConnectionCore> core_;
  uv_async_t* wake_ = nullptr;
  JsCallback callback_;
  bool open_ = false;
};

}  // namespace

void InitTrapChannel(Napi::Env env, Napi::Object exports) {
  exports.Set("TrapChannel", TrapChannel::Define(env));
  Napi::Object w = Napi::Object::New(env);
  w.Set("headerSize", Napi::Number::New(env, wire::kHeaderSize));
  w.Set("maxTrapMessage", Napi::Number::New(env, wire::kMaxTrapMessage));
  w.Set("regionRead", Napi::Number::New(env, wire::kRegionRead));
  w.Set("regionWrite", Napi::Number::New(env, wire::kRegionWrite));
  w.Set("typeMask", Napi::Number::New(env, wire::kTypeMask));
  w.Set("typeCommand", Napi::Number::New(env, wire::kTypeCommand));
  w.Set("typeReply", Napi::Number::New(env, wire::kTypeReply));
  w.Set("noReply", Napi::Number::New(env, wire::kNoReply));
  w.Set("regionAccessSize", Napi::Number::New(env, wire::kRegionAccessSize));
  exports.Set("vfioUserWire", w);
}

}  // namespace emu
