// Fault injection (fault_injection.h) and its binding: injectFault(point) arms a point, by name.
#include "base/fault_injection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/errors.h"
#include "base/lock_order.h"
#include "module.h"

namespace emu {
namespace {

constexpr const char* kNames[fault::kPoints] = {"workerBurst", "connectionRead", "napiCall", "irqTimer", "workerHold"};

Napi::Value InjectFault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) return ThrowTypeError(env, "expected a fault point's name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  for (uint32_t p = 0; p < fault::kPoints; p++) {
    if (name == kNames[p]) {
      fault::armed.fetch_or(1u << p, std::memory_order_acq_rel);
      return env.Undefined();
    }
  }
  return ThrowTypeError(env, "no such fault point");
}

#ifdef EMU_LOCK_ORDER_CHECKS
// Takes a switch's rank, then a worker's: the checks must abort (scripts/test-sanitizers.sh).
Napi::Value LockOrderProbe(const Napi::CallbackInfo& info) {
  lock_order::Acquired(lock_order::kSwitch);
  lock_order::Acquired(lock_order::kWorker);
  return info.Env().Undefined();
}
#endif

// lingeringSocket(seconds) -> { fd, peer, listener }: a TCP socket whose close(2) waits up to
// `seconds` (SO_LINGER, with unsent data the peer never reads): a file a client could hand over whose
// close blocks. Test-only (the closer of client_files.h).
Napi::Value LingeringSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int seconds = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 2;
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), len) < 0 || listen(listener, 1) < 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    return ThrowErrno(env, errno, "lingeringSocket");
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) return ThrowErrno(env, errno, "lingeringSocket");
  const int peer = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  char chunk[4096] = {};
  while (write(fd, chunk, sizeof(chunk)) > 0) {
  }
  linger l{1, seconds};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  Napi::Object o = Napi::Object::New(env);
  o.Set("fd", fd);
  o.Set("peer", peer);
  o.Set("listener", listener);
  return o;
}

}  // namespace

void InitFaultInjection(Napi::Env env, Napi::Object exports) {
  exports.Set("injectFault", Napi::Function::New(env, InjectFault, "injectFault"));
  exports.Set("lingeringSocket", Napi::Function::New(env, LingeringSocket, "lingeringSocket"));
#ifdef EMU_LOCK_ORDER_CHECKS
  exports.Set("lockOrderProbe", Napi::Function::New(env, LockOrderProbe, "lockOrderProbe"));
#endif
}

}  // namespace emu
