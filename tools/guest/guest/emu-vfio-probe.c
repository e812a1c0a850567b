/*
 * emu-vfio-probe: drives a PCI device from guest userspace through Linux VFIO.
 *
 * Built by @emu/guest at setup with the host's `gcc -static` and shipped in the guest initramfs as
 * /usr/bin/emu-vfio-probe. Output is one line per result, `word key=value ...`, meant for scripts.
 *
 * The device is bound to vfio-pci (driver_override + drivers_probe), then opened through its group:
 * /dev/vfio/N when the guest has an IOMMU (boot with `iommu: true`: QEMU intel-iommu + intel_iommu=on;
 * type1 IOMMU), or /dev/vfio/noiommu-N when the kernel has CONFIG_VFIO_NOIOMMU and vfio was loaded
 * with enable_unsafe_noiommu_mode=1 (Debian's 6.12 kernel does not have it).
 *
 * Every invocation opens the device and closes it at exit; vfio-pci may reset the device on open and
 * on close. Use `batch` to run several operations on one open device.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 16
#define MAX_IRQS 8
#define MAX_DMA 32

struct dma_map {
  uint64_t iova, size;
  uint8_t *va;
};

struct ctx {
  char bdf[64];
  int container, group, device;
  int noiommu;
  int group_id;
  struct vfio_device_info info;
  struct vfio_region_info regions[MAX_REGIONS];
  struct vfio_irq_info irqs[MAX_IRQS];
  int irq_fd[MAX_IRQS]; /* eventfd per irq index (one vector at a time) */
  unsigned irq_vector[MAX_IRQS];
  struct dma_map dma[MAX_DMA];
  int ndma;
};

static const char *op_name = "probe";

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  printf("error op=%s message=\"%s\"\n", op_name, msg);
  fflush(stdout);
  exit(1);
}

static uint64_t parse_u64(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || !*s || *end) fail("bad %s: %s", what, s);
  return v;
}

static int sysfs_write(const char *path, const char *val) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) return -errno;
  ssize_t n = write(fd, val, strlen(val));
  int err = n < 0 ? -errno : 0;
  close(fd);
  return err;
}

/* basename of a symlink target, or "" */
static void link_base(const char *path, char *out, size_t n) {
  char buf[512];
  ssize_t len = readlink(path, buf, sizeof buf - 1);
  out[0] = 0;
  if (len <= 0) return;
  buf[len] = 0;
  snprintf(out, n, "%s", basename(buf));
}

static void normalize_bdf(const char *in, char *out, size_t n) {
  /* accept bb:dd.f as well as dddd:bb:dd.f */
  if (strlen(in) == 7 && in[2] == ':' && in[5] == '.')
    snprintf(out, n, "0000:%s", in);
  else
    snprintf(out, n, "%s", in);
}

static void bind_vfio(struct ctx *c) {
  char path[256], drv[128];
  struct stat st;
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s", c->bdf);
  if (stat(path, &st) < 0) fail("no PCI device %s", c->bdf);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", c->bdf);
  link_base(path, drv, sizeof drv);
  if (strcmp(drv, "vfio-pci") == 0) return;
  if (stat("/sys/bus/pci/drivers/vfio-pci", &st) < 0)
    fail("vfio-pci is not loaded (boot with modules: ['vfio-pci'])");
  /* harmless where unsupported; needed for noiommu groups where it is */
  sysfs_write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "1");
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver_override", c->bdf);
  int err = sysfs_write(path, "vfio-pci");
  if (err) fail("write %s: %s", path, strerror(-err));
  if (drv[0]) {
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver/unbind", c->bdf);
    err = sysfs_write(path, c->bdf);
    if (err) fail("unbind %s from %s: %s", c->bdf, drv, strerror(-err));
  }
  err = sysfs_write("/sys/bus/pci/drivers_probe", c->bdf);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/driver", c->bdf);
  link_base(path, drv, sizeof drv);
  if (strcmp(drv, "vfio-pci") != 0)
    fail("vfio-pci did not bind %s (probe: %s); without an IOMMU group vfio-pci refuses devices: boot with "
         "iommu: true (intel-iommu), or a kernel with CONFIG_VFIO_NOIOMMU",
         c->bdf, err ? strerror(-err) : "ok");
}

static void open_device(struct ctx *c) {
  char path[256], grp[64];
  bind_vfio(c);
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", c->bdf);
  link_base(path, grp, sizeof grp);
  if (!grp[0]) fail("%s has no iommu_group", c->bdf);
  c->group_id = atoi(grp);
  snprintf(path, sizeof path, "/dev/vfio/%s", grp);
  c->group = open(path, O_RDWR);
  if (c->group < 0 && errno == ENOENT) {
    snprintf(path, sizeof path, "/dev/vfio/noiommu-%s", grp);
    c->group = open(path, O_RDWR);
    c->noiommu = 1;
  }
  if (c->group < 0) fail("open group %s: %s", path, strerror(errno));
  c->container = open("/dev/vfio/vfio", O_RDWR);
  if (c->container < 0) fail("open /dev/vfio/vfio: %s", strerror(errno));
  if (ioctl(c->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) fail("unknown VFIO API version");
  struct vfio_group_status gs = {.argsz = sizeof gs};
  if (ioctl(c->group, VFIO_GROUP_GET_STATUS, &gs) < 0) fail("VFIO_GROUP_GET_STATUS: %s", strerror(errno));
  if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
    fail("group %s is not viable (another device in it is bound to a host driver)", grp);
  if (ioctl(c->group, VFIO_GROUP_SET_CONTAINER, &c->container) < 0)
    fail("VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
  int type = VFIO_NOIOMMU_IOMMU;
  if (!c->noiommu)
    type = ioctl(c->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0 ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
  if (ioctl(c->container, VFIO_SET_IOMMU, type) < 0)
    fail("VFIO_SET_IOMMU(%d): %s%s", type, strerror(errno),
         c->noiommu ? "" : " (is vfio_iommu_type1 loaded? modules: ['vfio-pci', 'vfio_iommu_type1'])");
  c->device = ioctl(c->group, VFIO_GROUP_GET_DEVICE_FD, c->bdf);
  if (c->device < 0) fail("VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
  c->info.argsz = sizeof c->info;
  if (ioctl(c->device, VFIO_DEVICE_GET_INFO, &c->info) < 0) fail("VFIO_DEVICE_GET_INFO: %s", strerror(errno));
  for (unsigned i = 0; i < c->info.num_regions && i < MAX_REGIONS; i++) {
    c->regions[i].argsz = sizeof c->regions[i];
    c->regions[i].index = i;
    if (ioctl(c->device, VFIO_DEVICE_GET_REGION_INFO, &c->regions[i]) < 0) c->regions[i].size = 0;
  }
  for (unsigned i = 0; i < c->info.num_irqs && i < MAX_IRQS; i++) {
    c->irqs[i].argsz = sizeof c->irqs[i];
    c->irqs[i].index = i;
    if (ioctl(c->device, VFIO_DEVICE_GET_IRQ_INFO, &c->irqs[i]) < 0) c->irqs[i].count = 0;
  }
}

static const char *region_name(unsigned i) {
  static const char *names[] = {"bar0", "bar1", "bar2", "bar3", "bar4", "bar5", "rom", "config", "vga"};
  return i < 9 ? names[i] : "other";
}

static const char *irq_name(unsigned i) {
  static const char *names[] = {"intx", "msi", "msix", "err", "req"};
  return i < 5 ? names[i] : "other";
}

static unsigned parse_region(const char *s) {
  if (!strcmp(s, "config") || !strcmp(s, "cfg")) return VFIO_PCI_CONFIG_REGION_INDEX;
  if (!strcmp(s, "rom")) return VFIO_PCI_ROM_REGION_INDEX;
  if (!strncmp(s, "bar", 3)) s += 3;
  return (unsigned)parse_u64(s, "region");
}

static unsigned parse_width(const char *s) {
  unsigned w = (unsigned)parse_u64(s, "width");
  if (w != 1 && w != 2 && w != 4 && w != 8) fail("width must be 1, 2, 4 or 8, not %s", s);
  return w;
}

static void region_rw(struct ctx *c, unsigned idx, uint64_t off, unsigned width, uint64_t *val, int write) {
  if (idx >= c->info.num_regions || idx >= MAX_REGIONS) fail("no region %u", idx);
  struct vfio_region_info *r = &c->regions[idx];
  if (off + width > r->size) fail("%s offset 0x%" PRIx64 "+%u is outside its 0x%llx bytes", region_name(idx), off, width,
                                  (unsigned long long)r->size);
  uint8_t buf[8] = {0};
  ssize_t n;
  if (write) {
    memcpy(buf, val, width);
    n = pwrite(c->device, buf, width, (off_t)(r->offset + off));
  } else {
    n = pread(c->device, buf, width, (off_t)(r->offset + off));
  }
  if (n != (ssize_t)width)
    fail("%s %s offset 0x%" PRIx64 " width %u: %s", write ? "pwrite" : "pread", region_name(idx), off, width,
         n < 0 ? strerror(errno) : "short");
  if (!write) {
    *val = 0;
    memcpy(val, buf, width);
  }
}

static uint16_t cfg_read16(struct ctx *c, unsigned off) {
  uint64_t v;
  region_rw(c, VFIO_PCI_CONFIG_REGION_INDEX, off, 2, &v, 0);
  return (uint16_t)v;
}

/* memory/io decode (vfio-pci refuses BAR access without it), optionally bus mastering (for MSI/DMA) */
static void enable_command(struct ctx *c, int bus_master) {
  uint16_t cmd = cfg_read16(c, PCI_COMMAND);
  uint16_t want = cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_IO | (bus_master ? PCI_COMMAND_MASTER : 0);
  if (want != cmd) {
    uint64_t v = want;
    region_rw(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, 2, &v, 1);
  }
}

static void do_info(struct ctx *c) {
  printf("device bdf=%s group=%d mode=%s flags=0x%x regions=%u irqs=%u reset=%d pci=%d\n", c->bdf, c->group_id,
         c->noiommu ? "noiommu" : "iommu", c->info.flags, c->info.num_regions, c->info.num_irqs,
         !!(c->info.flags & VFIO_DEVICE_FLAGS_RESET), !!(c->info.flags & VFIO_DEVICE_FLAGS_PCI));
  printf("config vendor=0x%04x device=0x%04x command=0x%04x status=0x%04x\n", cfg_read16(c, PCI_VENDOR_ID),
         cfg_read16(c, PCI_DEVICE_ID), cfg_read16(c, PCI_COMMAND), cfg_read16(c, PCI_STATUS));
  for (unsigned i = 0; i < c->info.num_regions && i < MAX_REGIONS; i++) {
    struct vfio_region_info *r = &c->regions[i];
    printf("region index=%u name=%s size=0x%llx offset=0x%llx flags=0x%x read=%d write=%d mmap=%d\n", i,
           region_name(i), (unsigned long long)r->size, (unsigned long long)r->offset, r->flags,
           !!(r->flags & VFIO_REGION_INFO_FLAG_READ), !!(r->flags & VFIO_REGION_INFO_FLAG_WRITE),
           !!(r->flags & VFIO_REGION_INFO_FLAG_MMAP));
  }
  for (unsigned i = 0; i < c->info.num_irqs && i < MAX_IRQS; i++) {
    struct vfio_irq_info *q = &c->irqs[i];
    printf("irq index=%u name=%s count=%u flags=0x%x eventfd=%d maskable=%d automasked=%d\n", i, irq_name(i), q->count,
           q->flags, !!(q->flags & VFIO_IRQ_INFO_EVENTFD), !!(q->flags & VFIO_IRQ_INFO_MASKABLE),
           !!(q->flags & VFIO_IRQ_INFO_AUTOMASKED));
  }
}

static unsigned parse_irq_type(const char *s) {
  if (!strcmp(s, "intx")) return VFIO_PCI_INTX_IRQ_INDEX;
  if (!strcmp(s, "msi")) return VFIO_PCI_MSI_IRQ_INDEX;
  if (!strcmp(s, "msix") || !strcmp(s, "msi-x")) return VFIO_PCI_MSIX_IRQ_INDEX;
  fail("irq type must be intx, msi or msix, not %s", s);
}

static void irq_set(struct ctx *c, unsigned index, unsigned vector, int fd) {
  char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
  struct vfio_irq_set *s = (struct vfio_irq_set *)buf;
  memset(buf, 0, sizeof buf);
  s->index = index;
  s->start = vector;
  if (fd >= 0) {
    s->argsz = sizeof buf;
    s->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    s->count = 1;
    int32_t f = fd;
    memcpy(s->data, &f, sizeof f);
  } else {
    s->argsz = sizeof(struct vfio_irq_set);
    s->flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
    s->start = 0;
    s->count = 0;
  }
  if (ioctl(c->device, VFIO_DEVICE_SET_IRQS, s) < 0)
    fail("VFIO_DEVICE_SET_IRQS %s vector %u %s: %s", irq_name(index), vector, fd >= 0 ? "enable" : "disable",
         strerror(errno));
}

static void irq_on(struct ctx *c, unsigned index, unsigned vector) {
  if (index >= c->info.num_irqs || index >= MAX_IRQS) fail("no irq index %u", index);
  if (vector >= c->irqs[index].count)
    fail("%s vector %u: the device has %u", irq_name(index), vector, c->irqs[index].count);
  if (c->irq_fd[index] >= 0) {
    irq_set(c, index, 0, -1);
    close(c->irq_fd[index]);
  }
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) fail("eventfd: %s", strerror(errno));
  /* MSI/MSI-X: bus mastering must be on for the device's message write to reach the CPU */
  enable_command(c, 1);
  irq_set(c, index, vector, fd);
  c->irq_fd[index] = fd;
  c->irq_vector[index] = vector;
}

static void irq_off(struct ctx *c, unsigned index) {
  if (index < MAX_IRQS && c->irq_fd[index] >= 0) {
    irq_set(c, index, 0, -1);
    close(c->irq_fd[index]);
    c->irq_fd[index] = -1;
  }
}

/* sum of the per-CPU counts on the /proc/interrupts line of vfio-<type>[vector](bdf), or -1 */
static long long proc_interrupts(struct ctx *c, unsigned index, unsigned vector) {
  char want[128], line[1024];
  if (index == VFIO_PCI_INTX_IRQ_INDEX)
    snprintf(want, sizeof want, "vfio-intx(%s)", c->bdf);
  else
    snprintf(want, sizeof want, "vfio-%s[%u](%s)", irq_name(index), vector, c->bdf);
  FILE *f = fopen("/proc/interrupts", "r");
  if (!f) return -1;
  long long total = -1;
  while (fgets(line, sizeof line, f)) {
    if (!strstr(line, want)) continue;
    char *p = strchr(line, ':');
    if (!p) continue;
    p++;
    total = 0;
    for (;;) {
      while (*p == ' ') p++;
      if (*p < '0' || *p > '9') break;
      total += strtoll(p, &p, 10);
    }
    break;
  }
  fclose(f);
  return total;
}

/* waits for the eventfd; prints `<type> vector=N status=fired count=C ...` or `... status=timeout` */
static int irq_wait(struct ctx *c, unsigned index, int timeout_ms) {
  if (index >= MAX_IRQS || c->irq_fd[index] < 0) fail("%s is not enabled", irq_name(index));
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  struct pollfd p = {.fd = c->irq_fd[index], .events = POLLIN};
  int r;
  do r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long us = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
  unsigned vector = c->irq_vector[index];
  if (r > 0) {
    uint64_t count = 0;
    if (read(c->irq_fd[index], &count, sizeof count) != sizeof count) fail("read eventfd: %s", strerror(errno));
    printf("%s vector=%u status=fired count=%llu elapsed_us=%lld proc_interrupts=%lld\n", irq_name(index), vector,
           (unsigned long long)count, us, proc_interrupts(c, index, vector));
    return 0;
  }
  printf("%s vector=%u status=timeout elapsed_us=%lld proc_interrupts=%lld\n", irq_name(index), vector, us,
         proc_interrupts(c, index, vector));
  return 2;
}

static struct dma_map *dma_find(struct ctx *c, uint64_t iova, uint64_t len) {
  for (int i = 0; i < c->ndma; i++) {
    struct dma_map *m = &c->dma[i];
    if (iova >= m->iova && iova + len <= m->iova + m->size) return m;
  }
  fail("iova 0x%" PRIx64 "+%" PRIu64 " is not inside a dma-map", iova, len);
}

static void dma_map(struct ctx *c, uint64_t iova, uint64_t size) {
  if (c->noiommu) fail("dma-map needs an IOMMU (noiommu mode has no DMA mapping)");
  if (c->ndma >= MAX_DMA) fail("too many dma maps");
  size = (size + 4095) & ~4095ULL;
  void *va = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (va == MAP_FAILED) fail("mmap %" PRIu64 ": %s", size, strerror(errno));
  memset(va, 0, size);
  struct vfio_iommu_type1_dma_map m = {
      .argsz = sizeof m,
      .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
      .vaddr = (uintptr_t)va,
      .iova = iova,
      .size = size,
  };
  if (ioctl(c->container, VFIO_IOMMU_MAP_DMA, &m) < 0) fail("VFIO_IOMMU_MAP_DMA: %s", strerror(errno));
  c->dma[c->ndma++] = (struct dma_map){.iova = iova, .size = size, .va = va};
  enable_command(c, 1);
  printf("dma-map iova=0x%" PRIx64 " size=0x%" PRIx64 "\n", iova, size);
}

/*
 * garbage SECONDS SEED: a hostile iavf driver, for the fault campaigns. For SECONDS it writes garbage
 * to the device at full speed, from a seeded xorshift: register writes (tails, interrupt control, the
 * admin-queue registers, anything in BAR0), BAR0 reads, random bytes and plausible-looking descriptors
 * in a 1 MiB DMA buffer it maps (rings and buffers live there), and admin-queue sends whose descriptors
 * point into that buffer with random virtchnl opcodes and payloads. Offsets are the iavf VF's BAR0
 * (Linux drivers/net/ethernet/intel/iavf/iavf_register.h). Errors of single accesses are counted, not
 * fatal: the point is to keep going.
 */
#define GARBAGE_IOVA 0x100000ULL
#define GARBAGE_SIZE 0x100000ULL
#define GARBAGE_AQ 0x0      /* ATQ ring, 64 descriptors, in the DMA buffer */
#define GARBAGE_ARQ 0x1000  /* ARQ ring */
#define GARBAGE_BUF 0x80000 /* AQ message buffers */

static uint64_t xs_state;
static uint64_t xs(void) {
  xs_state ^= xs_state << 13;
  xs_state ^= xs_state >> 7;
  xs_state ^= xs_state << 17;
  return xs_state;
}

struct garbage_counts {
  uint64_t writes, reads, errors, dma_bytes, aq_sends;
};

static void garbage_reg(struct ctx *c, uint64_t off, uint32_t v, int write, struct garbage_counts *n) {
  struct vfio_region_info *r = &c->regions[VFIO_PCI_BAR0_REGION_INDEX];
  if (off + 4 > r->size) return;
  ssize_t got = write ? pwrite(c->device, &v, 4, (off_t)(r->offset + off))
                      : pread(c->device, &v, 4, (off_t)(r->offset + off));
  if (got != 4) n->errors++;
  if (write) n->writes++;
  else n->reads++;
}

/* A value a confused driver might write: random, small, or an address near the DMA buffer. */
static uint32_t garbage_value(void) {
  switch (xs() % 4) {
  case 0: return (uint32_t)xs();
  case 1: return (uint32_t)(xs() % 1024);
  case 2: return (uint32_t)(GARBAGE_IOVA + xs() % (GARBAGE_SIZE + 0x2000));
  default: return (uint32_t)(xs() % 2 ? 0x80000000u | (xs() % 1024) : 0);
  }
}

/* iavf registers a driver writes: the hot ones and the admin queue's. */
static uint64_t garbage_register(void) {
  static const uint32_t fixed[] = {0x4800, 0x5000, 0x5c00, 0x6000, 0x6400, 0x6800, 0x6c00, 0x7000,
                                   0x7400, 0x7800, 0x7c00, 0x8000, 0x8400, 0x8800};
  unsigned q = xs() % 16;
  switch (xs() % 8) {
  case 0: return 0x0000 + 4 * q;                     /* QTX_TAIL1 */
  case 1: return 0x2000 + 4 * q;                     /* QRX_TAIL1 */
  case 2: return 0x3800 + 4 * q;                     /* VFINT_DYN_CTLN1 */
  case 3: return 0x2800 + 64 * (xs() % 3) + 4 * q;   /* VFINT_ITRN1 */
  case 4: return 0xc400 + 4 * (xs() % 2);            /* VFQF_HENA */
  case 5: return 0xcc00 + 4 * (xs() % 13);           /* VFQF_HKEY */
  default: return fixed[xs() % (sizeof fixed / sizeof fixed[0])];
  }
}

static void garbage_dma(struct dma_map *m, struct garbage_counts *n) {
  uint64_t at = xs() % (GARBAGE_SIZE - 64);
  at &= ~15ULL;
  for (unsigned i = 0; i < 64; i += 8) {
    uint64_t v;
    switch (xs() % 3) {
    case 0: v = xs(); break;
    case 1: v = GARBAGE_IOVA + xs() % (GARBAGE_SIZE + 0x10000); break; /* a buffer address, maybe past the end */
    default: v = (xs() % 0x4000) << 34 | (xs() & 0xffff); break;       /* lengths and flags in qword1 */
    }
    memcpy(m->va + at + i, &v, 8);
  }
  n->dma_bytes += 64;
}

/* One admin-queue send: a SEND_MSG_TO_PF (mostly) descriptor at the tail, a random message, the tail moved. */
static void garbage_aq(struct ctx *c, struct dma_map *m, struct garbage_counts *n, unsigned *tail) {
  uint8_t *d = m->va + GARBAGE_AQ + 32 * *tail;
  uint64_t buf = GARBAGE_IOVA + GARBAGE_BUF + (xs() % 64) * 4096;
  uint16_t flags = (uint16_t)(xs() % 4 ? 0x1000 | 0x0400 : xs()); /* BUF|RD, or anything */
  uint16_t opcode = (uint16_t)(xs() % 8 ? 0x0801 : xs());
  uint16_t len = (uint16_t)(xs() % 4 ? xs() % 512 : xs());
  uint32_t vop = (uint32_t)(xs() % 8 ? xs() % 72 : xs());
  memset(d, 0, 32);
  memcpy(d + 0, &flags, 2);
  memcpy(d + 2, &opcode, 2);
  memcpy(d + 4, &len, 2);
  memcpy(d + 8, &vop, 4);
  uint32_t hi = (uint32_t)(buf >> 32), lo = (uint32_t)buf;
  if (xs() % 8 == 0) lo = (uint32_t)xs();
  memcpy(d + 24, &hi, 4);
  memcpy(d + 28, &lo, 4);
  for (unsigned i = 0; i < 512; i += 8) {
    uint64_t v = xs() % 2 ? xs() : GARBAGE_IOVA + xs() % GARBAGE_SIZE;
    memcpy(m->va + (buf - GARBAGE_IOVA) + i, &v, 8);
  }
  *tail = (*tail + 1) % 64;
  garbage_reg(c, 0x8400, *tail, 1, n); /* VF_ATQT1 */
  n->aq_sends++;
}

/* The admin queues where a driver puts them: in the DMA buffer, 64 entries each, enabled. */
static void garbage_aq_setup(struct ctx *c, struct garbage_counts *n) {
  uint64_t atq = GARBAGE_IOVA + GARBAGE_AQ, arq = GARBAGE_IOVA + GARBAGE_ARQ;
  garbage_reg(c, 0x7800, (uint32_t)(atq >> 32), 1, n); /* VF_ATQBAH1 */
  garbage_reg(c, 0x7c00, (uint32_t)atq, 1, n);         /* VF_ATQBAL1 */
  garbage_reg(c, 0x6800, 0x80000000u | 64, 1, n);      /* VF_ATQLEN1: enable, 64 */
  garbage_reg(c, 0x6000, (uint32_t)(arq >> 32), 1, n); /* VF_ARQBAH1 */
  garbage_reg(c, 0x6c00, (uint32_t)arq, 1, n);         /* VF_ARQBAL1 */
  garbage_reg(c, 0x8000, 0x80000000u | 64, 1, n);      /* VF_ARQLEN1 */
  garbage_reg(c, 0x7000, 63, 1, n);                    /* VF_ARQT1 */
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void do_garbage(struct ctx *c, unsigned seconds, uint64_t seed) {
  if (c->info.num_regions <= VFIO_PCI_BAR0_REGION_INDEX || !c->regions[0].size) fail("no BAR0");
  xs_state = seed * 0x9e3779b97f4a7c15ULL + 1;
  if (!c->ndma) dma_map(c, GARBAGE_IOVA, GARBAGE_SIZE);
  struct dma_map *m = dma_find(c, GARBAGE_IOVA, GARBAGE_SIZE);
  for (uint64_t i = 0; i < GARBAGE_SIZE; i += 8) {
    uint64_t v = xs();
    memcpy(m->va + i, &v, 8);
  }
  struct garbage_counts n = {0};
  unsigned tail = 0;
  garbage_aq_setup(c, &n);
  double end = now_s() + seconds;
  for (uint64_t i = 0;; i++) {
    if ((i & 63) == 0 && now_s() >= end) break;
    unsigned what = xs() % 100;
    if (what < 35) garbage_reg(c, garbage_register(), garbage_value(), 1, &n);
    else if (what < 45) garbage_reg(c, (xs() % c->regions[0].size) & ~3ULL, (uint32_t)xs(), 1, &n);
    else if (what < 50) garbage_reg(c, (xs() % c->regions[0].size) & ~3ULL, 0, 0, &n);
    else if (what < 75) garbage_dma(m, &n);
    else if (what < 98) garbage_aq(c, m, &n, &tail);
    else {
      garbage_aq_setup(c, &n);
      tail = 0;
    }
  }
  printf("garbage seconds=%u seed=%" PRIu64 " writes=%" PRIu64 " reads=%" PRIu64 " errors=%" PRIu64
         " dma_bytes=%" PRIu64 " aq_sends=%" PRIu64 "\n",
         seconds, seed, n.writes, n.reads, n.errors, n.dma_bytes, n.aq_sends);
}

static void usage(void) {
  fputs("usage:\n"
        "  emu-vfio-probe bind BDF\n"
        "  emu-vfio-probe info BDF\n"
        "  emu-vfio-probe read BDF REGION OFFSET WIDTH          REGION: 0-5, barN, rom, config\n"
        "  emu-vfio-probe write BDF REGION OFFSET WIDTH VALUE\n"
        "  emu-vfio-probe msix BDF VECTOR WRITE_REGION WRITE_OFFSET WRITE_VALUE TIMEOUT_MS\n"
        "  emu-vfio-probe msi BDF VECTOR WRITE_REGION WRITE_OFFSET WRITE_VALUE TIMEOUT_MS\n"
        "      enable the vector with an eventfd, enable bus mastering, write WRITE_VALUE (4 bytes) to\n"
        "      WRITE_REGION+WRITE_OFFSET (WRITE_REGION 'none' skips the write), wait for the eventfd\n"
        "  emu-vfio-probe batch BDF 'OP ARGS' ['OP ARGS'...]     one open device, ops in order:\n"
        "      info | read REGION OFF WIDTH | write REGION OFF WIDTH VALUE | sleep MS\n"
        "      irq-on TYPE VECTOR | irq-wait TYPE TIMEOUT_MS | irq-off TYPE      TYPE: intx, msi, msix\n"
        "      dma-map IOVA SIZE | dma-read IOVA WIDTH | dma-write IOVA WIDTH VALUE | dma-dump IOVA LEN\n"
        "      garbage SECONDS SEED: a hostile iavf driver writing garbage at full speed (see do_garbage)\n"
        "exit status: 0 ok, 1 error, 2 interrupt timeout\n",
        stderr);
  exit(1);
}

static int run_op(struct ctx *c, int argc, char **argv) {
  const char *op = argv[0];
  op_name = op;
#define NEED(n)                                                                                                        \
  do {                                                                                                                 \
    if (argc != (n) + 1) fail("%s takes %d arguments", op, n);                                                         \
  } while (0)
  if (!strcmp(op, "info")) {
    NEED(0);
    do_info(c);
  } else if (!strcmp(op, "read")) {
    NEED(3);
    unsigned idx = parse_region(argv[1]), w = parse_width(argv[3]);
    uint64_t off = parse_u64(argv[2], "offset"), v;
    if (idx < VFIO_PCI_ROM_REGION_INDEX) enable_command(c, 0);
    region_rw(c, idx, off, w, &v, 0);
    printf("read region=%s offset=0x%" PRIx64 " width=%u value=0x%" PRIx64 "\n", region_name(idx), off, w, v);
  } else if (!strcmp(op, "write")) {
    NEED(4);
    unsigned idx = parse_region(argv[1]), w = parse_width(argv[3]);
    uint64_t off = parse_u64(argv[2], "offset"), v = parse_u64(argv[4], "value");
    if (idx < VFIO_PCI_ROM_REGION_INDEX) enable_command(c, 0);
    region_rw(c, idx, off, w, &v, 1);
    printf("write region=%s offset=0x%" PRIx64 " width=%u value=0x%" PRIx64 "\n", region_name(idx), off, w, v);
  } else if (!strcmp(op, "sleep")) {
    NEED(1);
    usleep((useconds_t)parse_u64(argv[1], "ms") * 1000);
  } else if (!strcmp(op, "irq-on")) {
    NEED(2);
    irq_on(c, parse_irq_type(argv[1]), (unsigned)parse_u64(argv[2], "vector"));
    printf("irq-on type=%s vector=%s\n", argv[1], argv[2]);
  } else if (!strcmp(op, "irq-wait")) {
    NEED(2);
    return irq_wait(c, parse_irq_type(argv[1]), (int)parse_u64(argv[2], "timeout"));
  } else if (!strcmp(op, "irq-off")) {
    NEED(1);
    irq_off(c, parse_irq_type(argv[1]));
  } else if (!strcmp(op, "msix") || !strcmp(op, "msi")) {
    NEED(5);
    unsigned index = !strcmp(op, "msix") ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
    irq_on(c, index, (unsigned)parse_u64(argv[1], "vector"));
    if (strcmp(argv[2], "none") != 0) {
      unsigned idx = parse_region(argv[2]);
      uint64_t off = parse_u64(argv[3], "offset"), v = parse_u64(argv[4], "value");
      region_rw(c, idx, off, 4, &v, 1);
    }
    int r = irq_wait(c, index, (int)parse_u64(argv[5], "timeout"));
    irq_off(c, index);
    return r;
  } else if (!strcmp(op, "dma-map")) {
    NEED(2);
    dma_map(c, parse_u64(argv[1], "iova"), parse_u64(argv[2], "size"));
  } else if (!strcmp(op, "dma-read") || !strcmp(op, "dma-write")) {
    int wr = !strcmp(op, "dma-write");
    NEED(wr ? 3 : 2);
    uint64_t iova = parse_u64(argv[1], "iova"), v = 0;
    unsigned w = parse_width(argv[2]);
    struct dma_map *m = dma_find(c, iova, w);
    if (wr) {
      v = parse_u64(argv[3], "value");
      memcpy(m->va + (iova - m->iova), &v, w);
    } else {
      memcpy(&v, m->va + (iova - m->iova), w);
    }
    printf("%s iova=0x%" PRIx64 " width=%u value=0x%" PRIx64 "\n", op, iova, w, v);
  } else if (!strcmp(op, "garbage")) {
    NEED(2);
    enable_command(c, 1);
    do_garbage(c, (unsigned)parse_u64(argv[1], "seconds"), parse_u64(argv[2], "seed"));
  } else if (!strcmp(op, "dma-dump")) {
    NEED(2);
    uint64_t iova = parse_u64(argv[1], "iova"), len = parse_u64(argv[2], "len");
    struct dma_map *m = dma_find(c, iova, len);
    printf("dma-dump iova=0x%" PRIx64 " len=%" PRIu64 " data=", iova, len);
    for (uint64_t i = 0; i < len; i++) printf("%02x", m->va[iova - m->iova + i]);
    printf("\n");
  } else {
    fail("unknown operation %s", op);
  }
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) usage();
  struct ctx c;
  memset(&c, 0, sizeof c);
  c.container = c.group = c.device = -1;
  for (unsigned i = 0; i < MAX_IRQS; i++) c.irq_fd[i] = -1;
  const char *cmd = argv[1];
  op_name = cmd;
  normalize_bdf(argv[2], c.bdf, sizeof c.bdf);
  if (!strcmp(cmd, "bind")) {
    bind_vfio(&c);
    char path[256], grp[64];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", c.bdf);
    link_base(path, grp, sizeof grp);
    printf("bind bdf=%s driver=vfio-pci group=%s\n", c.bdf, grp[0] ? grp : "none");
    return 0;
  }
  open_device(&c);
  int status = 0;
  if (!strcmp(cmd, "batch")) {
    for (int i = 3; i < argc && status == 0; i++) {
      char *words[16];
      int n = 0;
      char *save = NULL;
      for (char *t = strtok_r(argv[i], " \t", &save); t && n < 16; t = strtok_r(NULL, " \t", &save)) words[n++] = t;
      if (n == 0) continue;
      status = run_op(&c, n, words);
    }
  } else {
    /* single operation: argv = cmd BDF args... → op args... */
    char *words[16];
    int n = 0;
    words[n++] = argv[1];
    for (int i = 3; i < argc && n < 16; i++) words[n++] = argv[i];
    status = run_op(&c, n, words);
  }
  for (unsigned i = 0; i < MAX_IRQS; i++) irq_off(&c, i);
  return status;
}
