// StagedMemory for JavaScript: a StagedSpace (staged_space.h) the ring calls (iavf_rings.cc) walk
// through, for one pass of DataPath over guest memory only DMA messages reach.
//
//   new StagedMemory()
//   stage.add(iova: bigint, bytes: Uint8Array | null, length) -> boolean   (null: the fetch failed)
//   stage.bytes -> number held
#pragma once

#include <napi.h>

#include "memory/staged_space.h"

namespace emu {

class StagedMemory : public Napi::ObjectWrap<StagedMemory> {
 public:
  static Napi::Function Define(Napi::Env env);
  // The stage behind a JS object, or nullptr if it is not one.
  static StagedMemory* FromValue(Napi::Value v);
  explicit StagedMemory(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StagedMemory>(info) {}

  StagedSpace& space() { return space_; }
  // What the last walk left for its caller, as fields of `result`: its stores (writes: [{ iova, bytes }])
  // and, when it stopped for memory the stage does not hold (`stopped`), the range to fetch
  // (need: { iova, length }).
  void Report(Napi::Env env, Napi::Object result, bool stopped);

 private:
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value GetBytes(const Napi::CallbackInfo& info);

  static Napi::FunctionReference* constructor_;
  StagedSpace space_;
};

}  // namespace emu
