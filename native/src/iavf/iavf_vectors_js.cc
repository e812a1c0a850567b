// The binding of iavf::Vectors (iavf_vectors.h):
//
//   new IavfVectors(count, tailFd | -1, manualClock); setLines(lines | null); read(v); write(v, value);
//   readItr(v, i); writeItr(v, i, interval); raise(v, itr); reset(); advance(ns); counts() ->
//   { fired[], throttled[] }; close()
//
// It is also a RegisterBlock (register_block.h) for VFINT_DYN_CTLN1: the socket thread applies a
// guest's re-arm itself, without the event loop.
#include <sys/mman.h>

#include <cerrno>

#include "base/args.h"
#include "base/errors.h"
#include "iavf/iavf_vectors_binding.h"
#include "irq/irq_lines_binding.h"
#include "module.h"
#include "transport/register_block.h"

namespace emu {
namespace {

using iavf::Vectors;

constexpr size_t kTailPageBytes = 0x3000;
constexpr uint32_t kMaxVectors = 17;  // the misc vector and one per queue pair (16)

// VFINT_DYN_CTLN1(n), n = vector - 1, as 32-bit registers.
class DynCtlBlock : public RegisterBlock {
 public:
  explicit DynCtlBlock(std::shared_ptr<Vectors> v) : v_(std::move(v)) {}
  bool Read(uint64_t offset, uint32_t size, uint64_t* value) override {
    if (size != 4 || offset / 4 >= iavf::kDynCtln1Count) return false;
    *value = v_->Read(static_cast<uint32_t>(offset / 4) + 1);
    return true;
  }
  bool Write(uint64_t offset, uint32_t size, uint64_t value) override {
    if (size != 4 || offset / 4 >= iavf::kDynCtln1Count) return false;
    v_->Write(static_cast<uint32_t>(offset / 4) + 1, static_cast<uint32_t>(value));
    return true;
  }

 private:
  std::shared_ptr<Vectors> v_;
};

class IavfVectorsJs : public Napi::ObjectWrap<IavfVectorsJs> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "IavfVectors",
                                   {
                                       InstanceMethod<&IavfVectorsJs::SetLines>("setLines"),
                                       InstanceMethod<&IavfVectorsJs::Read>("read"),
                                       InstanceMethod<&IavfVectorsJs::Write>("write"),
                                       InstanceMethod<&IavfVectorsJs::ReadItr>("readItr"),
                                       InstanceMethod<&IavfVectorsJs::WriteItr>("writeItr"),
                                       InstanceMethod<&IavfVectorsJs::Raise>("raise"),
                                       InstanceMethod<&IavfVectorsJs::Reset>("reset"),
                                       InstanceMethod<&IavfVectorsJs::Advance>("advance"),
                                       InstanceMethod<&IavfVectorsJs::Counts>("counts"),
                                       InstanceMethod<&IavfVectorsJs::Close>("close"),
                                   });
    constructor = new Napi::FunctionReference(Napi::Persistent(f));
    return f;
  }

  explicit IavfVectorsJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IavfVectorsJs>(info) {
    Napi::Env env = info.Env();
    int64_t count, fd;
    bool manual;
    if (!ArgInt(info, 0, 1, kMaxVectors, &count) || !ArgInt(info, 1, -1, INT32_MAX, &fd) ||
        !ArgBool(info, 2, &manual)) {
      return;
    }
    void* page = nullptr;
    if (fd >= 0) {
      page = mmap(nullptr, kTailPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
      if (page == MAP_FAILED) {
        ThrowErrno(env, errno, "mmap");
        return;
      }
    }
    core_ = std::make_shared<Vectors>(static_cast<uint32_t>(count), page, kTailPageBytes, manual);
    block_ = std::make_shared<DynCtlBlock>(core_);
    if (!manual) {
      iavf::IrqTimer::Get().Retain();
      retained_ = true;
      env_ = env;
      napi_add_env_cleanup_hook(env, CleanupHook, this);
    }
  }

  ~IavfVectorsJs() override { Shut(); }

  const std::shared_ptr<Vectors>& core() const { return core_; }
  const std::shared_ptr<RegisterBlock>& block() const { return block_; }

 private:
  static void CleanupHook(void* arg) {
    auto* self = static_cast<IavfVectorsJs*>(arg);
    self->ReleaseTimer(false);
  }

  void ReleaseTimer(bool remove_hook) {
    if (!retained_) return;
    retained_ = false;
    if (remove_hook) napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    iavf::IrqTimer::Get().Release();
  }

  // Whoever else holds the vectors (a NIC in the data plane, a trap channel) keeps them working with no
  // lines, so nothing they raise reaches a client any more.
  void Shut() {
    if (core_) core_->SetLines(nullptr);
    ReleaseTimer(true);
    core_.reset();
    block_.reset();
  }

  bool Open(Napi::Env env) {
    if (core_) return true;
    ThrowErrno(env, EBADF, "IavfVectors");
    return false;
  }

  bool Vector(const Napi::CallbackInfo& info, size_t i, uint32_t* v) {
    int64_t x;
    if (!ArgInt(info, i, 0, UINT32_MAX, &x) || !Open(info.Env())) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }

  Napi::Value SetLines(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    std::shared_ptr<IrqLines> lines;
    if (!info[0].IsNull()) {
      lines = IrqLinesOf(info[0]);
      if (!lines) return ThrowTypeError(env, "expected an open IrqLines or null");
    }
    core_->SetLines(std::move(lines));
    return env.Undefined();
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    uint32_t v;
    if (!Vector(info, 0, &v)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), core_->Read(v));
  }

  Napi::Value Write(const Napi::CallbackInfo& info) {
    uint32_t v;
    int64_t value;
    if (!Vector(info, 0, &v) || !ArgInt(info, 1, 0, UINT32_MAX, &value)) return info.Env().Undefined();
    core_->Write(v, static_cast<uint32_t>(value));
    return info.Env().Undefined();
  }

  Napi::Value ReadItr(const Napi::CallbackInfo& info) {
    uint32_t v;
    int64_t i;
    if (!Vector(info, 0, &v) || !ArgInt(info, 1, 0, UINT32_MAX, &i)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), core_->ReadItr(v, static_cast<uint32_t>(i)));
  }

  Napi::Value WriteItr(const Napi::CallbackInfo& info) {
    uint32_t v;
    int64_t i, x;
    if (!Vector(info, 0, &v) || !ArgInt(info, 1, 0, UINT32_MAX, &i) || !ArgInt(info, 2, 0, UINT32_MAX, &x)) {
      return info.Env().Undefined();
    }
    core_->WriteItr(v, static_cast<uint32_t>(i), static_cast<uint32_t>(x));
    return info.Env().Undefined();
  }

  Napi::Value Raise(const Napi::CallbackInfo& info) {
    uint32_t v;
    int64_t itr;
    if (!Vector(info, 0, &v) || !ArgInt(info, 1, 0, 3, &itr)) return info.Env().Undefined();
    core_->Raise(v, static_cast<uint32_t>(itr));
    return info.Env().Undefined();
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    if (Open(info.Env())) core_->Reset();
    return info.Env().Undefined();
  }

  // advance(ns): a manual clock moves on, and what was throttled until then fires.
  Napi::Value Advance(const Napi::CallbackInfo& info) {
    int64_t ns;
    if (!ArgInt(info, 0, 0, INT64_C(1) << 52, &ns) || !Open(info.Env())) return info.Env().Undefined();
    core_->Advance(static_cast<uint64_t>(ns));
    return info.Env().Undefined();
  }

  Napi::Value Counts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!Open(env)) return env.Undefined();
    const Vectors::Counts c = core_->counts();
    Napi::Array fired = Napi::Array::New(env, c.fired.size());
    Napi::Array throttled = Napi::Array::New(env, c.throttled.size());
    for (uint32_t i = 0; i < c.fired.size(); i++) {
      fired.Set(i, c.fired[i]);
      throttled.Set(i, c.throttled[i]);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("fired", fired);
    o.Set("throttled", throttled);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shut();
    return info.Env().Undefined();
  }

  std::shared_ptr<Vectors> core_;
  std::shared_ptr<RegisterBlock> block_;
  bool retained_ = false;
  napi_env env_ = nullptr;
};

Napi::FunctionReference* IavfVectorsJs::constructor = nullptr;

IavfVectorsJs* Unwrapped(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(IavfVectorsJs::constructor->Value())) return nullptr;
  return IavfVectorsJs::Unwrap(v.As<Napi::Object>());
}

}  // namespace

std::shared_ptr<iavf::Vectors> IavfVectorsOf(Napi::Value v) {
  IavfVectorsJs* js = Unwrapped(v);
  return js != nullptr ? js->core() : nullptr;
}

std::shared_ptr<RegisterBlock> RegisterBlockOf(Napi::Value v) {
  IavfVectorsJs* js = Unwrapped(v);
  return js != nullptr ? js->block() : nullptr;
}

void InitIavfVectors(Napi::Env env, Napi::Object exports) {
  exports.Set("IavfVectors", IavfVectorsJs::Define(env));
  // BAR0 offsets the vectors know, for lib/iavf-vectors.ts to check against driver-iavf's registers.
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("itrn1Offset", static_cast<double>(iavf::kItrn1Offset));
  layout.Set("itrn1Stride", static_cast<double>(iavf::kItrn1Stride));
  layout.Set("dynCtln1Offset", static_cast<double>(iavf::kDynCtln1Offset));
  layout.Set("dynCtln1Count", iavf::kDynCtln1Count);
  layout.Set("maxVectors", kMaxVectors);
  exports.Set("iavfVectorsLayout", layout);
}

}  // namespace emu
