// emu-net: network helpers for e2e guests, where busybox has no tool for the job.
//
//   emu-net send IFACE COUNT HEX          send the Ethernet frame HEX (as is: no offload, no checksum
//                                         fixed) COUNT times on IFACE through an AF_PACKET socket
//   emu-net sctp-server PORT               accept one SCTP association (one-to-one style, RFC 6458 4),
//                                         read it to the end, print "sctp got BYTES FNV"
//   emu-net sctp-client ADDR PORT BYTES    connect to ADDR:PORT over SCTP, send BYTES of a fixed
//                                         pattern, shut the association down (all delivered), print
//                                         "sctp sent BYTES FNV"
//
// FNV is the 64-bit FNV-1a hash of the bytes, in hex, so the two sides can be compared. SCTP needs the
// kernel's sctp module; no libsctp is used (plain sockets with IPPROTO_SCTP).
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

static int fail(const char *what) {
  fprintf(stderr, "emu-net: %s: %s\n", what, strerror(errno));
  return 1;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static const uint64_t kFnvBasis = 0xcbf29ce484222325ULL;

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int send_frames(const char *iface, long count, const char *hex) {
  size_t len = strlen(hex) / 2;
  if (len < 14 || strlen(hex) % 2 != 0 || len > 16384) {
    fprintf(stderr, "emu-net: a frame is 14 to 16384 bytes of hex\n");
    return 2;
  }
  unsigned char *frame = malloc(len);
  if (!frame) return fail("malloc");
  for (size_t i = 0; i < len; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      fprintf(stderr, "emu-net: not hex at %zu\n", 2 * i);
      return 2;
    }
    frame[i] = (unsigned char)(hi << 4 | lo);
  }
  int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (s < 0) return fail("socket(AF_PACKET)");
  struct sockaddr_ll to;
  memset(&to, 0, sizeof to);
  to.sll_family = AF_PACKET;
  to.sll_ifindex = (int)if_nametoindex(iface);
  to.sll_halen = 6;
  memcpy(to.sll_addr, frame, 6);
  if (to.sll_ifindex == 0) return fail(iface);
  long sent = 0;
  for (long i = 0; i < count; i++) {
    if (sendto(s, frame, len, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)len) {
      // The qdisc may be full for a moment: wait and try the same frame again.
      if (errno == ENOBUFS || errno == EAGAIN) {
        usleep(1000);
        i--;
        continue;
      }
      return fail("sendto");
    }
    sent++;
  }
  printf("sent %ld frames of %zu bytes\n", sent, len);
  return 0;
}

static int sctp_server(int port) {
  int s = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  if (s < 0) return fail("socket(IPPROTO_SCTP)");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return fail("bind");
  if (listen(s, 1) < 0) return fail("listen");
  printf("sctp listening %d\n", port);
  fflush(stdout);
  int c = accept(s, NULL, NULL);
  if (c < 0) return fail("accept");
  unsigned char buf[65536];
  uint64_t h = kFnvBasis;
  long long total = 0;
  for (;;) {
    ssize_t n = read(c, buf, sizeof buf);
    if (n < 0) return fail("read");
    if (n == 0) break;
    h = fnv(h, buf, (size_t)n);
    total += n;
  }
  printf("sctp got %lld %016llx\n", total, (unsigned long long)h);
  close(c);
  close(s);
  return 0;
}

static int sctp_client(const char *addr, int port, long long bytes) {
  int s = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
  if (s < 0) return fail("socket(IPPROTO_SCTP)");
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
    fprintf(stderr, "emu-net: not an IPv4 address: %s\n", addr);
    return 2;
  }
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return fail("connect");
  unsigned char buf[8192];
  uint64_t h = kFnvBasis;
  long long left = bytes, at = 0;
  while (left > 0) {
    size_t n = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)((at + (long long)i) * 7 + ((at + (long long)i) >> 11));
    ssize_t w = write(s, buf, n);
    if (w < 0) return fail("write");
    h = fnv(h, buf, (size_t)w);
    left -= w;
    at += w;
  }
  // SHUTDOWN completes once the peer has every byte (RFC 4960 9.2): wait for it, so that the guest may
  // power off after this returns.
  if (shutdown(s, SHUT_WR) < 0) return fail("shutdown");
  while (read(s, buf, sizeof buf) > 0) {
  }
  printf("sctp sent %lld %016llx\n", bytes, (unsigned long long)h);
  close(s);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "send") == 0) return send_frames(argv[2], atol(argv[3]), argv[4]);
  if (argc == 3 && strcmp(argv[1], "sctp-server") == 0) return sctp_server(atoi(argv[2]));
  if (argc == 5 && strcmp(argv[1], "sctp-client") == 0) return sctp_client(argv[2], atoi(argv[3]), atoll(argv[4]));
  fprintf(stderr,
          "usage: emu-net send IFACE COUNT HEX | sctp-server PORT | sctp-client ADDR PORT BYTES\n");
  return 2;
}
