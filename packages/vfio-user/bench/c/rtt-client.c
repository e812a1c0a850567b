/*
 * Register round trips as a vCPU makes them: one 4-byte REGION_READ at a time (of config space,
 * region 7, offset 0, unless REGION and OFFSET say otherwise), the next sent when the reply is in, for
 * MS milliseconds after a warm-up. Prints one JSON line: round trips per second and the p50 / p99
 * latency in microseconds.
 *   rtt-client SOCKET MS [REGION OFFSET]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "vfio-user-min.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int round_trip(int fd, uint16_t id, uint16_t command, const void *payload, uint32_t len, uint8_t *reply) {
  uint8_t out[sizeof(struct vfu_header) + 64];
  struct vfu_header h = {.msg_id = id, .command = command, .size = (uint32_t)sizeof(h) + len};
  memcpy(out, &h, sizeof(h));
  memcpy(out + sizeof(h), payload, len);
  if (io_all(fd, out, h.size, 1) < 0) return -1;
  struct vfu_header r;
  if (io_all(fd, &r, sizeof(r), 0) < 0 || r.size < sizeof(r) || r.size - sizeof(r) > 4096) return -1;
  if (io_all(fd, reply, r.size - sizeof(r), 0) < 0) return -1;
  return (r.flags & VFU_ERROR) ? -1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 5) return 2;
  const double ms = atof(argv[2]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) return perror("connect"), 1;
  static uint8_t reply[4096];
  uint16_t version[2] = {0, 0};
  if (round_trip(fd, 0, VFU_VERSION, version, sizeof(version), reply) < 0) return fprintf(stderr, "VERSION\n"), 1;
  struct vfu_region_access a = {.offset = 0, .region = 7, .count = 4};
  if (argc == 5) {
    a.region = (uint32_t)strtoul(argv[3], NULL, 0);
    a.offset = strtoull(argv[4], NULL, 0);
  }
  for (int i = 0; i < 2000; i++)
    if (round_trip(fd, 1, VFU_REGION_READ, &a, sizeof(a), reply) < 0) return fprintf(stderr, "REGION_READ\n"), 1;
  size_t cap = 1 << 22, n = 0;
  double *t = malloc(cap * sizeof(double));
  const double start = now_us(), end = start + ms * 1000;
  for (double at = start; at < end && n < cap; n++) {
    if (round_trip(fd, (uint16_t)(2 + n), VFU_REGION_READ, &a, sizeof(a), reply) < 0) return fprintf(stderr, "REGION_READ\n"), 1;
    const double done = now_us();
    t[n] = done - at;
    at = done;
  }
  const double seconds = (now_us() - start) / 1e6;
  qsort(t, n, sizeof(double), cmp);
  printf("{\"rate\":%.0f,\"p50\":%.1f,\"p99\":%.1f}\n", n / seconds, t[n / 2], t[(size_t)(n * 0.99)]);
  return 0;
}
