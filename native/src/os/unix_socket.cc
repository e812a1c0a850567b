// AF_UNIX stream sockets: listen/accept/connect/socketpair and sendmsg/recvmsg with SCM_RIGHTS.
// Every socket is nonblocking and CLOEXEC. The hot calls (accept, sendmsg, recvmsg) return -errno
// instead of throwing, since EAGAIN is their normal outcome; setup calls throw.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"
#include "os/fd_passing.h"

namespace emu {
namespace {

constexpr size_t kRecvBufferSize = 64 * 1024;

// Fills a sockaddr_un for a filesystem path; false (errno set) if it cannot be represented.
bool MakeAddress(const std::string& path, sockaddr_un* addr, socklen_t* len) {
  if (path.empty() || path.find('\0') != std::string::npos) {
    errno = EINVAL;
    return false;
  }
  if (path.size() >= sizeof(addr->sun_path)) {
    errno = ENAMETOOLONG;
    return false;
  }
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

int NewSocket() { return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }

// unixListen(path, backlog, mode): fd. The socket file is created with permission bits `mode` from
// its first moment (the umask is narrowed around bind, not chmod'ed after: in between, anyone the
// umask let in could connect). Never unlinks an existing path: a stale or live socket file is
// reported as EADDRINUSE and the caller decides. The umask is the process's: a file another thread
// creates in that moment gets the narrower one, which only ever restricts it.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  int64_t backlog, mode;
  if (!ArgString(info, 0, &path) || !ArgInt(info, 1, 0, INT32_MAX, &backlog) || !ArgInt(info, 2, 0, 0777, &mode)) {
    return env.Undefined();
  }
  sockaddr_un addr;
  socklen_t len;
  // Failures are reported as "listen", as net.Server does: that is the operation the caller asked for.
  if (!MakeAddress(path, &addr, &len)) return ThrowErrno(env, errno, "listen");
  int fd = NewSocket();
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  const mode_t previous = umask(static_cast<mode_t>(~mode & 0777));
  const int bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), len);
  const int bind_errno = errno;
  umask(previous);
  if (bound < 0) {
    close(fd);
    return ThrowErrno(env, bind_errno, "listen");
  }
  if (listen(fd, static_cast<int>(backlog)) < 0) {
    int err = errno;
    unlink(path.c_str());  // bind created it, so it is ours to remove
    close(fd);
    return ThrowErrno(env, err, "listen");
  }
  return Napi::Number::New(env, fd);
}

// unixAccept(fd): new fd, or -errno (-EAGAIN when no connection is pending).
Napi::Value Accept(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int conn;
  do {
    conn = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (conn < 0 && errno == EINTR);
  return Napi::Number::New(info.Env(), conn < 0 ? -errno : conn);
}

// unixConnect(path): fd. The socket is nonblocking before connect: an AF_UNIX connect completes
// at once, except that a full listen backlog would block a blocking socket (a deadlock when the
// listener is in this very process); nonblocking, that is EAGAIN instead.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path;
  if (!ArgString(info, 0, &path)) return env.Undefined();
  sockaddr_un addr;
  socklen_t len;
  if (!MakeAddress(path, &addr, &len)) return ThrowErrno(env, errno, "connect");
  int fd = NewSocket();
  if (fd < 0) return ThrowErrno(env, errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "connect");
  }
  return Napi::Number::New(env, fd);
}

// unixSocketpair(): [fd, fd].
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
    return ThrowErrno(env, errno, "socketpair");
  }
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Number::New(env, fds[0]));
  result.Set(1u, Napi::Number::New(env, fds[1]));
  return result;
}

// sendmsg(fd, data: Uint8Array, fds: number[]): bytes sent, or -errno. The fds ride on the first
// byte; the kernel takes its own references, so the caller may close them once this returns > 0.
Napi::Value Sendmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    return ThrowTypeError(env, "expected a Uint8Array");
  }
  if (!info[2].IsArray()) return ThrowTypeError(env, "expected an array of fds");
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  Napi::Array fdList = info[2].As<Napi::Array>();
  uint32_t fdCount = fdList.Length();
  if (fdCount > kMaxFds) return Napi::Number::New(env, -EINVAL);
  std::vector<int> fds(fdCount);
  for (uint32_t i = 0; i < fdCount; i++) {
    Napi::Value v = fdList.Get(i);
    if (!v.IsNumber()) return ThrowTypeError(env, "expected an array of fds");
    fds[i] = v.As<Napi::Number>().Int32Value();
  }
  const ssize_t n = SendWithFds(fd, data.Data(), data.ByteLength(), fds.data(), fds.size());
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

// recvmsg(fd): 0 at end of stream, -errno on error (-EAGAIN when nothing is ready), else
// { data: Buffer, fds: number[], truncated: boolean }. Received fds are CLOEXEC.
//
// Which bytes the fds come with: Linux ends a read inside the skb that carried fds (it never reads
// past it), but may start the read with earlier, fd-less skbs. So the fds belong to the sendmsg
// holding the chunk's last byte; where that sendmsg starts in the chunk is not knowable (MSG_PEEK
// does not help: it walks on to the fd-carrying skb whatever the requested size).
Napi::Value Recvmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  // One scratch buffer per thread (worker threads may load this addon too); the result is a copy
  // of exactly the bytes read.
  thread_local std::vector<char> scratch(kRecvBufferSize);
  const Received r = ReceiveWithFds(fd, scratch.data(), scratch.size());
  if (r.bytes < 0) return Napi::Number::New(env, -errno);
  const ssize_t n = r.bytes;
  const bool truncated = r.truncated;
  if (n == 0 && r.fds.empty() && !truncated) return Napi::Number::New(env, 0);
  Napi::Array fds = Napi::Array::New(env, r.fds.size());
  for (uint32_t i = 0; i < r.fds.size(); i++) fds.Set(i, Napi::Number::New(env, r.fds[i]));

  Napi::Object result = Napi::Object::New(env);
  result.Set("data", Napi::Buffer<char>::Copy(env, scratch.data(), static_cast<size_t>(n)));
  result.Set("fds", fds);
  result.Set("truncated", Napi::Boolean::New(env, truncated));
  return result;
}

// peerCredentials(fd): { pid, uid, gid } of the process that connected (SO_PEERCRED).
Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  ucred cred{};
  socklen_t size = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) < 0) return ThrowErrno(env, errno, "getsockopt");
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

// socketError(fd): the pending SO_ERROR (0 if none), read when the poller reports an error.
Napi::Value SocketError(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return ThrowErrno(info.Env(), errno, "getsockopt");
  return Napi::Number::New(info.Env(), err);
}

}  // namespace

void InitUnixSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixListen", Napi::Function::New(env, Listen, "unixListen"));
  exports.Set("unixAccept", Napi::Function::New(env, Accept, "unixAccept"));
  exports.Set("unixConnect", Napi::Function::New(env, Connect, "unixConnect"));
  exports.Set("unixSocketpair", Napi::Function::New(env, Socketpair, "unixSocketpair"));
  exports.Set("sendmsg", Napi::Function::New(env, Sendmsg, "sendmsg"));
  exports.Set("recvmsg", Napi::Function::New(env, Recvmsg, "recvmsg"));
  exports.Set("socketError", Napi::Function::New(env, SocketError, "socketError"));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
  exports.Set("maxFds", Napi::Number::New(env, kMaxFds));
  exports.Set("recvBufferSize", Napi::Number::New(env, kRecvBufferSize));
}

}  // namespace emu
