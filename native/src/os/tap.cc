// TAP devices (/dev/net/tun with IFF_TAP | IFF_NO_PI): open one by name, then move whole Ethernet
// frames through its fd. The fd is nonblocking and CLOEXEC; readiness is watched with a Poller,
// never by blocking. Frame I/O returns -errno instead of throwing, since EAGAIN is its normal
// outcome; opening throws.
//
//   tapOpen(name) -> { fd, name }          name may be a template such as "emu%d"
//   readFrame(fd, buf) -> bytes | -errno   one frame per call (a TAP read never splits or joins frames)
//   writeFrame(fd, buf) -> bytes | -errno  one frame per call
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/args.h"
#include "base/errors.h"
#include "module.h"

namespace emu {
namespace {

constexpr const char* kTunPath = "/dev/net/tun";

// The Uint8Array argument i (a Buffer is one), or false after throwing a TypeError.
bool ArgBytes(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* length) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(info.Env(), "expected a Uint8Array");
    return false;
  }
  Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
  *data = bytes.Data();
  *length = bytes.ByteLength();
  return true;
}

Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name;
  if (!ArgString(info, 0, &name)) return env.Undefined();
  if (name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos) {
    return ThrowTypeError(env, "expected an interface name of at most 15 bytes");
  }
  int fd;
  do {
    fd = open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ThrowErrno(env, errno, "open");

  ifreq ifr;
  std::memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, err, "ioctl");
  }
  // The kernel fills in the actual name (a template such as "emu%d" becomes "emu0").
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("name", Napi::String::New(env, ifr.ifr_name));
  return result;
}

// (fd, buf) -> io(fd, buf) retried on EINTR: the byte count, or -errno. A tap fd moves one whole frame
// per read or write.
template <typename Io>
Napi::Value FrameIo(const Napi::CallbackInfo& info, Io io) {
  Napi::Env env = info.Env();
  int fd;
  uint8_t* data;
  size_t length;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &length)) return env.Undefined();
  ssize_t n;
  do {
    n = io(fd, data, length);
  } while (n < 0 && errno == EINTR);
  return Napi::Number::New(env, n < 0 ? -errno : static_cast<double>(n));
}

// readFrame(fd, buf): the frame's length, or -errno (-EAGAIN when none is pending). A frame longer
// than buf is truncated by the kernel to buf's length: give a buffer of at least MTU + 18 bytes.
Napi::Value ReadFrame(const Napi::CallbackInfo& info) {
  return FrameIo(info, [](int fd, uint8_t* data, size_t length) { return read(fd, data, length); });
}

// writeFrame(fd, buf): bytes written (the whole frame), or -errno.
Napi::Value WriteFrame(const Napi::CallbackInfo& info) {
  return FrameIo(info, [](int fd, uint8_t* data, size_t length) { return write(fd, data, length); });
}

}  // namespace

void InitTap(Napi::Env env, Napi::Object exports) {
  exports.Set("tapOpen", Napi::Function::New(env, Open, "tapOpen"));
  exports.Set("readFrame", Napi::Function::New(env, ReadFrame, "readFrame"));
  exports.Set("writeFrame", Napi::Function::New(env, WriteFrame, "writeFrame"));
  exports.Set("tunPath", Napi::String::New(env, kTunPath));
}

}  // namespace emu
