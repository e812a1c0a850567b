// How the data plane's JavaScript classes reach each other: DataPlane (plane_js.cc), NativeSwitch
// (switch_js.cc) and IavfNic (nic_js.cc). The API each offers is in the file's opening comment and in
// lib/dataplane.ts.
#pragma once

#include <napi.h>

#include <memory>

#include "dataplane/core.h"

namespace emu {
namespace dataplane {

Napi::Function DefineDataPlane(Napi::Env env);
Napi::Function DefineNativeSwitch(Napi::Env env);
Napi::Function DefineIavfNic(Napi::Env env);

// The core of a DataPlane object; nullptr if `v` is none.
std::shared_ptr<PlaneCore> PlaneCoreOf(Napi::Value v);
// The core of a NativeSwitch object and its plane's; false if `v` is none.
bool SwitchCoreOf(Napi::Value v, std::shared_ptr<SwitchCore>* core, std::shared_ptr<PlaneCore>* plane);
// An IavfNic's exceptions since the last, to its onEvents (its switch's async callback calls this).
void DeliverEvents(IavfNic* nic, Napi::Env env);

}  // namespace dataplane
}  // namespace emu
