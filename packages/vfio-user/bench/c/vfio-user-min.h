/*
 * The few pieces of the vfio-user wire format (QEMU docs/interop/vfio-user.rst) the benchmark's C
 * programs need: the 16-byte header, blocking exact reads and writes.
 */
#pragma once
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

enum { VFU_VERSION = 1, VFU_REGION_READ = 9 };
enum { VFU_TYPE_COMMAND = 0, VFU_TYPE_REPLY = 1 << 0, VFU_ERROR = 1 << 3 };

struct vfu_header {
  uint16_t msg_id;
  uint16_t command;
  uint32_t size;
  uint32_t flags;
  uint32_t error;
};

struct vfu_region_access {
  uint64_t offset;
  uint32_t region;
  uint32_t count;
};

static inline int io_all(int fd, void *buf, size_t n, int writing) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}
