// Errors crossing the native boundary. Native code only reports *what* failed (errno + syscall);
// lib/errors.ts turns that into a SystemError with code, message and path.
#pragma once

#include <napi.h>

namespace emu {

// An Error whose message is strerror(err), with `errno` (positive, as the syscall set it) and `syscall`.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);

// Throws ErrnoError and returns undefined, so callers can `return ThrowErrno(...)`.
Napi::Value ThrowErrno(Napi::Env env, int err, const char* syscall);

// Throws a TypeError for a malformed argument (the TS wrapper validates first; this keeps a
// direct caller of the raw binding from turning garbage into a syscall on fd 0).
Napi::Value ThrowTypeError(Napi::Env env, const char* message);

}  // namespace emu
