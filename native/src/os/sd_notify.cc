// systemd's readiness protocol (sd_notify(3)): one datagram of newline-separated VAR=value
// assignments to the AF_UNIX socket named by $NOTIFY_SOCKET. Node has no UNIX datagram sockets, so it
// is sent from here; lib/sd-notify.ts reads the variable and checks the text.
//
//   sdNotify(path, state)   path: a filesystem path, or "@name" for the abstract namespace
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

namespace emu {
namespace {

Napi::Value Notify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  std::string state;
  if (!ArgString(info, 0, &path) || !ArgString(info, 1, &state)) return env.Undefined();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) return ThrowErrno(env, ENAMETOOLONG, "sendto");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  ssize_t n = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len);
  int err = errno;
  close(fd);
  if (n < 0) return ThrowErrno(env, err, "sendto");
  return env.Undefined();
}

}  // namespace

void InitSdNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New(env, Notify, "sdNotify"));
}

}  // namespace emu
