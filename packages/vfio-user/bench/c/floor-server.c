/*
 * The floor of a register round trip: a vfio-user server that does nothing but answer. It accepts one
 * client on the UNIX socket given, answers VERSION with 0.0 and no capabilities, and every other
 * command with a reply that echoes the request's first 16 payload bytes plus `count` zero bytes for
 * REGION_READ. One thread, blocking I/O: what a C device server costs at the least.
 *   floor-server SOCKET
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vfio-user-min.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
  unlink(argv[1]);
  if (bind(ls, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(ls, 1) < 0) return perror("listen"), 1;
  printf("ready\n");
  fflush(stdout);
  int fd = accept(ls, NULL, NULL);
  if (fd < 0) return perror("accept"), 1;
  static uint8_t payload[1 << 20];
  for (;;) {
    struct vfu_header h;
    if (io_all(fd, &h, sizeof(h), 0) < 0) break;
    size_t len = h.size - sizeof(h);
    if (h.size < sizeof(h) || len > sizeof(payload) || io_all(fd, payload, len, 0) < 0) break;
    struct vfu_header r = {.msg_id = h.msg_id, .command = h.command, .flags = VFU_TYPE_REPLY};
    static uint8_t out[sizeof(struct vfu_header) + 64];
    size_t body = 0;
    if (h.command == VFU_VERSION) {
      uint16_t v[2] = {0, 0};
      memcpy(out + sizeof(r), v, sizeof(v));
      body = sizeof(v);
    } else if (h.command == VFU_REGION_READ && len >= sizeof(struct vfu_region_access)) {
      struct vfu_region_access a;
      memcpy(&a, payload, sizeof(a));
      if (a.count > 32) a.count = 32;
      memcpy(out + sizeof(r), &a, sizeof(a));
      memset(out + sizeof(r) + sizeof(a), 0, a.count);
      body = sizeof(a) + a.count;
    }
    r.size = (uint32_t)(sizeof(r) + body);
    memcpy(out, &r, sizeof(r));
    if (io_all(fd, out, r.size, 1) < 0) break;
  }
  return 0;
}
