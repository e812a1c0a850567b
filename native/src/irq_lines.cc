// IrqLines (irq_lines.h), and its binding:
//
//   new IrqLines(count); assign(vector, fd | -1); trigger(vector) -> Result; mask(vector, on) -> Result;
//   enabled(vector); clear(); counts() -> { triggered, dropped }; close()
#include "irq_lines.h"

#include <unistd.h>

#include <cerrno>
#include <memory>

#include "args.h"
#include "errors.h"
#include "irq_lines_binding.h"
#include "module.h"

namespace emu {

IrqLines::~IrqLines() {
  for (Line& l : lines_) {
    if (l.fd >= 0) close(l.fd);
  }
}

void IrqLines::Assign(uint32_t v, int fd) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (v >= lines_.size()) {
    if (fd >= 0) close(fd);
    return;
  }
  Line& l = lines_[v];
  if (l.fd >= 0) close(l.fd);
  l.fd = fd;
  l.pending = false;
}

IrqLines::Result IrqLines::TriggerLocked(Line& l) {
  if (l.fd < 0) return kNone;
  if (l.masked) {
    l.pending = true;
    return kPending;
  }
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = write(l.fd, &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(one))) {
    counts_.dropped++;
    return kDropped;
  }
  counts_.triggered++;
  return kFired;
}

IrqLines::Result IrqLines::Trigger(uint32_t v) {
  std::lock_guard<std::mutex> lock(mutex_);
  return v < lines_.size() ? TriggerLocked(lines_[v]) : kNone;
}

IrqLines::Result IrqLines::SetMasked(uint32_t v, bool masked) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (v >= lines_.size()) return kNone;
  Line& l = lines_[v];
  l.masked = masked;
  if (masked || !l.pending) return kNone;
  l.pending = false;
  return TriggerLocked(l);
}

bool IrqLines::Enabled(uint32_t v) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return v < lines_.size() && lines_[v].fd >= 0;
}

void IrqLines::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (Line& l : lines_) {
    if (l.fd >= 0) close(l.fd);
    l = Line{};
  }
}

IrqLines::Counts IrqLines::counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

namespace {

constexpr uint32_t kMaxLines = 2048;  // PCI's MSI-X table limit

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
    lines_ = std::make_shared<IrqLines>(static_cast<uint32_t>(count));
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
  exports.Set("IrqLines", IrqLinesJs::Define(env));
  Napi::Object results = Napi::Object::New(env);
  results.Set("fired", static_cast<uint32_t>(IrqLines::kFired));
  results.Set("pending", static_cast<uint32_t>(IrqLines::kPending));
  results.Set("none", static_cast<uint32_t>(IrqLines::kNone));
  results.Set("dropped", static_cast<uint32_t>(IrqLines::kDropped));
  exports.Set("irqResults", results);
}

}  // namespace emu
