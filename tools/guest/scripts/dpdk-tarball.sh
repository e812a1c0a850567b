#!/usr/bin/env bash
# The DPDK a guest runs: Debian trixie's dpdk-testpmd (DPDK 24.11) with the iavf PMD, as a tarball the
# guest unpacks (dpdk-testpmd, its ldd closure, the PMD plugins, ld-linux, libgcc_s), built once in a
# copy of the guest rootfs with apt (network for apt on the first run) and cached. Prints the
# tarball's path on stdout. Used by dpdk-testpmd.sh and the DPDK e2e suites.
#
# Usage: sudo tools/guest/scripts/dpdk-tarball.sh      (root)
# Env:   EMU_GUEST_CACHE (default /var/cache/emu-guest)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CACHE=${EMU_GUEST_CACHE:-/var/cache/emu-guest}
DPDK_DIR=$CACHE/dpdk
DROOT=$DPDK_DIR/rootfs
TARBALL=$DPDK_DIR/dpdk.tar
STAMP=$DPDK_DIR/stamp
PMDS=usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0
# dpdk (the runtime: EAL, ethdev, …) and the PMDs we use; the other librte-* packages and libjansson4,
# libpcap0.8t64, ibverbs-providers (libmlx5) are what dpdk-testpmd links against (its PMD-specific
# commands link the bnxt/bond/dpaa/i40e/ice/ixgbe/mlx5 PMDs directly).
PACKAGES="dpdk librte-net-iavf25 librte-bus-pci25 librte-mempool-ring25
  librte-bitratestats25 librte-bpf25 librte-bus-auxiliary25 librte-bus-dpaa25 librte-cmdline25
  librte-common-dpaax25 librte-common-mlx5-25 librte-crypto-scheduler25 librte-dmadev25
  librte-eventdev25 librte-gro25 librte-gso25 librte-hash25 librte-ip-frag25 librte-latencystats25
  librte-mempool-dpaa25 librte-metrics25 librte-net-bnxt25 librte-net-bond25 librte-net-dpaa25
  librte-net-i40e25 librte-net-ice25 librte-net-ixgbe25 librte-net-mlx5-25 librte-pcapng25
  librte-pdump25 librte-reorder25 librte-sched25 librte-timer25
  libjansson4 libpcap0.8t64 ibverbs-providers"
PACKAGES=$(echo $PACKAGES)
RECIPE="v1 packages=$PACKAGES testpmd=dpdk-dev pmds=$PMDS"

log() { echo "dpdk-tarball: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot, QEMU guest)"

# The guest environment (/var/cache/emu-guest/rootfs, kernel, initramfs).
log "emu-guest setup"
node "$REPO/tools/guest/bin/emu-guest.js" setup >/dev/null
[ -d "$CACHE/rootfs" ] || die "no $CACHE/rootfs after emu-guest setup"

# The DPDK rootfs (a copy of the guest rootfs, packages installed with apt in a chroot) and the
#    tarball the guest unpacks: dpdk-testpmd + its ldd closure + the PMD plugins + ld-linux + libgcc_s.
in_droot() { # run a command in the DPDK chroot, with /proc, in a private mount namespace
  unshare --mount --propagation private sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$DROOT" "$@"
}

build_dpdk() {
  if [ ! -d "$DROOT" ]; then
    log "copying $CACHE/rootfs to $DROOT"
    rm -rf "$DROOT.tmp"
    cp -a "$CACHE/rootfs" "$DROOT.tmp"
    mv "$DROOT.tmp" "$DROOT"
  fi
  log "apt-get install dpdk + $(($(wc -w <<<"$PACKAGES") - 1)) packages (in $DROOT)"
  in_droot env DEBIAN_FRONTEND=noninteractive apt-get -q update >"$DPDK_DIR/apt.log" 2>&1 ||
    die "apt-get update failed, see $DPDK_DIR/apt.log"
  in_droot env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends install $PACKAGES \
    >>"$DPDK_DIR/apt.log" 2>&1 || die "apt-get install failed, see $DPDK_DIR/apt.log"
  # dpdk-testpmd is only in dpdk-dev, whose dependencies (compilers, -dev packages) we don't want:
  # download the .deb and take the binary out of it.
  log "dpdk-testpmd from dpdk-dev"
  in_droot sh -c 'rm -rf /tmp/dpdk-dev && mkdir -p /tmp/dpdk-dev && cd /tmp/dpdk-dev &&
    apt-get -q download dpdk-dev && dpkg-deb -x dpdk-dev_*.deb x &&
    install -m 755 x/usr/bin/dpdk-testpmd /usr/bin/dpdk-testpmd && cd / && rm -rf /tmp/dpdk-dev' \
    >>"$DPDK_DIR/apt.log" 2>&1 || die "dpdk-dev download/extract failed, see $DPDK_DIR/apt.log"

  log "building $TARBALL"
  local list=$DPDK_DIR/list.txt
  # ldd closure of testpmd and of every plugin EAL loads from the PMD directory (*.so.25)
  in_droot sh -c 'ldd /usr/bin/dpdk-testpmd /'"$PMDS"'/*.so.25' >"$DPDK_DIR/ldd.txt" 2>&1 ||
    die "ldd failed, see $DPDK_DIR/ldd.txt"
  if grep -q 'not found' "$DPDK_DIR/ldd.txt"; then
    grep 'not found' "$DPDK_DIR/ldd.txt" | sort -u >&2
    die "dpdk-testpmd or a plugin has missing libraries (see $DPDK_DIR/ldd.txt)"
  fi
  {
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(0x/ { print $1 }' "$DPDK_DIR/ldd.txt"
    echo /usr/bin/dpdk-testpmd
    echo /lib64/ld-linux-x86-64.so.2
    echo /usr/lib/x86_64-linux-gnu/libgcc_s.so.1 # dlopen'd by glibc (pthread_cancel, unwinding)
    (cd "$DROOT" && ls -1 "$PMDS"/*.so.25 | sed 's|^|/|')
  } | sed 's|^/||' | sort -u >"$list"
  # -h: store files, not symlinks (the guest has no /lib -> usr/lib); sorted, so hard-link targets
  # (the same library under lib/ and the PMD directory) come first.
  tar -C "$DROOT" -chf "$TARBALL.tmp" -T "$list"
  mv "$TARBALL.tmp" "$TARBALL"
  echo "$RECIPE" >"$STAMP"
  log "$TARBALL: $(wc -l <"$list") files, $(du -m "$TARBALL" | cut -f1) MB"
}

mkdir -p "$DPDK_DIR"
exec 9>"$DPDK_DIR/.lock"
flock 9
if [ -f "$TARBALL" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$RECIPE" ]; then
  log "cached: $TARBALL"
else
  build_dpdk
fi
flock -u 9
echo "$TARBALL"
