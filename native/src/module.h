// Each concern registers its own exports; module.cc only calls these.
#pragma once

#include <napi.h>

namespace emu {

void InitUnixSocket(Napi::Env env, Napi::Object exports);
void InitPoller(Napi::Env env, Napi::Object exports);
void InitMmap(Napi::Env env, Napi::Object exports);
void InitEventFd(Napi::Env env, Napi::Object exports);
void InitMemfd(Napi::Env env, Napi::Object exports);
void InitSdNotify(Napi::Env env, Napi::Object exports);
void InitTap(Napi::Env env, Napi::Object exports);
void InitGuestMemory(Napi::Env env, Napi::Object exports);
void InitStagedMemory(Napi::Env env, Napi::Object exports);
void InitDoorbellWatcher(Napi::Env env, Napi::Object exports);
void InitDataPlane(Napi::Env env, Napi::Object exports);
void InitGuestDriver(Napi::Env env, Napi::Object exports);
void InitTrapChannel(Napi::Env env, Napi::Object exports);
void InitIrqLines(Napi::Env env, Napi::Object exports);
void InitIavfVectors(Napi::Env env, Napi::Object exports);
void InitOffloads(Napi::Env env, Napi::Object exports);
void InitTxFrames(Napi::Env env, Napi::Object exports);
void InitFaultInjection(Napi::Env env, Napi::Object exports);
void InitWatchdog(Napi::Env env, Napi::Object exports);
void InitClientFiles(Napi::Env env, Napi::Object exports);
void InitGuard(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);

}  // namespace emu
