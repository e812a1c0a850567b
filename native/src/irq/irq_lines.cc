// IrqLines (irq_lines.h), and the binding of it and of the IrqWriter behind it:
//
//   new IrqWriter(name, onEvents?(flags)); start(); stop(); idle(); busyNs(); close()
//   new IrqLines(count, writer); assign(vector, fd | -1); trigger(vector) -> Result;
//   mask(vector, on) -> Result; enabled(vector); clear(); counts() -> { triggered, dropped }; close()
#include "irq/irq_lines.h"
#include "base/contain.h"
#include "base/lock_order.h"

#include <uv.h>

#include <cerrno>
#include <memory>

#include "base/args.h"
#include "base/errors.h"
#include "base/js_callback.h"
#include "base/wake_up.h"
#include "irq/irq_lines_binding.h"
#include "module.h"

namespace emu {

IrqLines::~IrqLines() {
  for (Line& l : lines_) {
    if (l.target) l.target->Retire();
  }
}

void IrqLines::ReleaseLocked(Line& l, std::vector<std::shared_ptr<IrqWriter::Target>>* released) {
  if (!l.target) return;
  l.target->Retire();
  released->push_back(std::move(l.target));
  l.target.reset();
}

void IrqLines::Assign(uint32_t v, int fd) {
  std::shared_ptr<IrqWriter::Target> fresh;
  if (fd >= 0) {
    try {
      fresh = std::make_shared<IrqWriter::Target>(fd, tally_);
    } catch (...) {
      close(fd);  // owned from the call on, as documented
      throw;
    }
  }
  std::vector<std::shared_ptr<IrqWriter::Target>> released;
  released.reserve(1);
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqLines);
    if (v < lines_.size()) {
      Line& l = lines_[v];
      ReleaseLocked(l, &released);
      l.target = std::move(fresh);
      l.pending = false;
    }
  }
  // Outside the mutex: a write blocked on the old eventfd gives up, and the last holder closes it.
  for (auto& t : released) writer_->Retired(t.get());
}

IrqLines::Result IrqLines::TriggerLocked(Line& l) {
  if (!l.target) return kNone;
  if (l.masked) {
    l.pending = true;
    return kPending;
  }
  return writer_->Post(l.target) ? kFired : kDropped;
}

IrqLines::Result IrqLines::Trigger(uint32_t v) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqLines);
  return v < lines_.size() ? TriggerLocked(lines_[v]) : kNone;
}

IrqLines::Result IrqLines::SetMasked(uint32_t v, bool masked) {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqLines);
  if (v >= lines_.size()) return kNone;
  Line& l = lines_[v];
  l.masked = masked;
  if (masked || !l.pending) return kNone;
  l.pending = false;
  return TriggerLocked(l);
}

bool IrqLines::Enabled(uint32_t v) const {
  lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqLines);
  return v < lines_.size() && lines_[v].target != nullptr;
}

void IrqLines::Clear() {
  std::vector<std::shared_ptr<IrqWriter::Target>> released;
  {
    lock_order::Guard<std::mutex> lock(mutex_, lock_order::kIrqLines);
    released.reserve(lines_.size());
    for (Line& l : lines_) {
      ReleaseLocked(l, &released);
      l = Line{};
    }
  }
  for (auto& t : released) writer_->Retired(t.get());
}

IrqLines::Counts IrqLines::counts() const {
  Counts c;
  c.triggered = static_cast<double>(tally_->delivered.load(std::memory_order_relaxed));
  c.dropped = static_cast<double>(tally_->dropped.load(std::memory_order_relaxed));
  return c;
}

namespace {

constexpr uint32_t kMaxLines = 2048;  // PCI's MSI-X table limit

// A device's IrqWriter, and its events on the JS loop.
class IrqWriterJs : public Napi::ObjectWrap<IrqWriterJs> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "IrqWriter",
                                   {
                                       InstanceMethod<&IrqWriterJs::Start>("start"),
                                       InstanceMethod<&IrqWriterJs::Stop>("stop"),
                                       InstanceMethod<&IrqWriterJs::Idle>("idle"),
                                       InstanceMethod<&IrqWriterJs::BusyNs>("busyNs"),
                                       InstanceMethod<&IrqWriterJs::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  static std::shared_ptr<IrqWriter> Of(Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(constructor->Value())) return nullptr;
    return Unwrap(v.As<Napi::Object>())->writer_;
  }

  explicit IrqWriterJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IrqWriterJs>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString() || !(info[1].IsUndefined() || info[1].IsFunction())) {
      ThrowTypeError(env, "expected (name: string, onEvents?: function)");
      return;
    }
    writer_ = std::make_shared<IrqWriter>(info[0].As<Napi::String>().Utf8Value());
    if (info[1].IsFunction()) {
      wake_ = OpenWakeUp(
          env,
          [](uv_async_t* h) {
            // A libuv callback: nothing may throw out of it (contain.h).
            Contained("interrupt writer callback", [&] {
              if (h->data != nullptr) static_cast<IrqWriterJs*>(h->data)->Deliver();
            });
          },
          this);
      if (wake_ == nullptr) return;
      env_ = env;
      on_events_.Set(env, info[1].As<Napi::Function>(), "EmuIrqWriter", info.This().As<Napi::Object>());
      uv_async_t* wake = wake_;
      writer_->SetWake([wake] { uv_async_send(wake); });
    }
  }

  ~IrqWriterJs() override { Shut(); }

 private:
  void Deliver() {
    if (!writer_) return;
    const uint32_t flags = writer_->TakeEvents();
    if (flags == 0) return;
    Napi::HandleScope scope(env_);
    on_events_.Call(env_, Value(), {Napi::Number::New(env_, flags)});
  }

  void Shut() {
    if (!writer_) return;
    writer_->SetWake(nullptr);
    writer_->Stop();
    writer_.reset();
    if (wake_ != nullptr) CloseWakeUp(wake_);
    wake_ = nullptr;
    on_events_.Drop();
  }

  bool Alive(Napi::Env env) {
    if (writer_) return true;
    ThrowErrno(env, EBADF, "IrqWriter");
    return false;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (Alive(info.Env())) writer_->Start();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (writer_) writer_->Stop();
    return info.Env().Undefined();
  }

  Napi::Value Idle(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), !writer_ || writer_->Idle());
  }

  Napi::Value BusyNs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), writer_ ? static_cast<double>(writer_->BusyNs()) : 0);
  }

  // Stops the thread; lines that share the writer keep their eventfds, and their triggers are dropped.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    return info.Env().Undefined();
  }

  std::shared_ptr<IrqWriter> writer_;
  uv_async_t* wake_ = nullptr;
  Napi::Env env_ = nullptr;
  JsCallback on_events_;
};

Napi::FunctionReference* IrqWriterJs::constructor = nullptr;

class IrqLinesJs : public Napi::ObjectWrap<IrqLinesJs> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "IrqLines",
                                   {
                                       InstanceMethod<&IrqLinesJs::Assign>("assign"),
                                       InstanceMethod<&IrqLinesJs::Trigger>("trigger"),
                                       InstanceMethod<&IrqLinesJs::Mask>("mask"),
                                       InstanceMethod<&IrqLinesJs::Enabled>("enabled"),
                                       InstanceMethod<&IrqLinesJs::Clear>("clear"),
                                       InstanceMethod<&IrqLinesJs::Counts>("counts"),
                                       InstanceMethod<&IrqLinesJs::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit IrqLinesJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IrqLinesJs>(info) {
    int64_t count;
    if (!ArgInt(info, 0, 0, kMaxLines, &count)) return;
    std::shared_ptr<IrqWriter> writer = IrqWriterJs::Of(info[1]);
    if (!writer) {
      ThrowTypeError(info.Env(), "expected (count, writer: IrqWriter)");
      return;
    }
    lines_ = std::make_shared<IrqLines>(static_cast<uint32_t>(count), std::move(writer));
  }

  const std::shared_ptr<IrqLines>& lines() const { return lines_; }

 private:
  bool Vector(const Napi::CallbackInfo& info, uint32_t* v) {
    int64_t x;
    if (!ArgInt(info, 0, 0, kMaxLines, &x)) return false;
    if (!lines_) {
      ThrowErrno(info.Env(), EBADF, "IrqLines");
      return false;
    }
    *v = static_cast<uint32_t>(x);
    return true;
  }

  Napi::Value Assign(const Napi::CallbackInfo& info) {
    uint32_t v;
    int64_t fd;
    if (!Vector(info, &v) || !ArgInt(info, 1, -1, INT32_MAX, &fd)) return info.Env().Undefined();
    lines_->Assign(v, static_cast<int>(fd));
    return info.Env().Undefined();
  }

  Napi::Value Trigger(const Napi::CallbackInfo& info) {
    uint32_t v;
    if (!Vector(info, &v)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), lines_->Trigger(v));
  }

  Napi::Value Mask(const Napi::CallbackInfo& info) {
    uint32_t v;
    bool on;
    if (!Vector(info, &v) || !ArgBool(info, 1, &on)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), lines_->SetMasked(v, on));
  }

  Napi::Value Enabled(const Napi::CallbackInfo& info) {
    uint32_t v;
    if (!Vector(info, &v)) return info.Env().Undefined();
    return Napi::Boolean::New(info.Env(), lines_->Enabled(v));
  }

  Napi::Value Clear(const Napi::CallbackInfo& info) {
    if (lines_) lines_->Clear();
    return info.Env().Undefined();
  }

  Napi::Value Counts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const IrqLines::Counts c = lines_ ? lines_->counts() : IrqLines::Counts{};
    Napi::Object o = Napi::Object::New(env);
    o.Set("triggered", c.triggered);
    o.Set("dropped", c.dropped);
    return o;
  }

  // Closes every eventfd; whoever else holds the lines (a device's native interrupt logic) keeps a
  // set with none, so its triggers find nothing.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (lines_) lines_->Clear();
    lines_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<IrqLines> lines_;
};

Napi::FunctionReference* IrqLinesJs::constructor = nullptr;

}  // namespace

std::shared_ptr<IrqLines> IrqLinesOf(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(IrqLinesJs::constructor->Value())) return nullptr;
  return IrqLinesJs::Unwrap(v.As<Napi::Object>())->lines();
}

void InitIrqLines(Napi::Env env, Napi::Object exports) {
  exports.Set("IrqWriter", IrqWriterJs::Define(env));
  exports.Set("IrqLines", IrqLinesJs::Define(env));
  Napi::Object events = Napi::Object::New(env);
  events.Set("dropped", IrqWriter::kDropped);
  exports.Set("irqWriterEvents", events);
  Napi::Object results = Napi::Object::New(env);
  results.Set("fired", static_cast<uint32_t>(IrqLines::kFired));
  results.Set("pending", static_cast<uint32_t>(IrqLines::kPending));
  results.Set("none", static_cast<uint32_t>(IrqLines::kNone));
  results.Set("dropped", static_cast<uint32_t>(IrqLines::kDropped));
  exports.Set("irqResults", results);
}

}  // namespace emu
