// sendmsg / recvmsg with SCM_RIGHTS on a nonblocking AF_UNIX stream socket, once for every socket
// owner of the module (UnixSocket on the JS thread, TrapChannel on the socket thread). Plain C++.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <vector>

namespace emu {

// SCM_MAX_FD: the kernel refuses more fds per sendmsg.
constexpr size_t kMaxFds = 253;

// Sends data with `count` fds riding on its first byte, without blocking and without SIGPIPE (a
// closed peer is EPIPE); EINTR is retried. The kernel takes its own references to the fds. Returns
// the bytes sent, or -1 with errno (EINVAL for more than kMaxFds fds).
ssize_t SendWithFds(int sock, const void* data, size_t length, const int* fds, size_t count);

struct Received {
  ssize_t bytes;         // 0 at end of stream; -1 with errno (EAGAIN when nothing is ready)
  std::vector<int> fds;  // CLOEXEC; the caller owns them
  bool truncated;        // MSG_CTRUNC: fds were lost
};

// One nonblocking recvmsg into buffer (EINTR retried).
Received ReceiveWithFds(int sock, void* buffer, size_t capacity);

}  // namespace emu
