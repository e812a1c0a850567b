#!/bin/bash
# The reference of forward.bench.ts: DPDK's vhost-user ↔ virtio-user testpmd pair on this machine, io
# forwarding in a closed loop (16 bursts of FRAME-byte frames started by the virtio side), one core each.
# Installs Debian's dpdk-dev (dpdk-testpmd) when missing and sets up 2 MiB hugepages (both need root).
# Prints the virtio side's "show port stats all" after SECONDS of forwarding; exits 2 with a reason
# on stderr when the reference cannot run here.
#   dpdk-pair.sh FRAME SECONDS
set -u
FRAME=$1
SECONDS_=$2
fail() { echo "$*" >&2; exit 2; }

if ! command -v dpdk-testpmd >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "dpdk-testpmd missing (and not root to install dpdk-dev)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dpdk-dev >/dev/null 2>&1 \
    || fail "dpdk-testpmd missing and apt-get install dpdk-dev failed"
fi
[ "$(id -u)" = 0 ] || fail "hugepages need root"
# Two processes of 256 MiB each: 256 free pages of 2 MiB, and some to spare.
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "$free" -lt 320 ]; then
  echo $(( $(cat /proc/sys/vm/nr_hugepages) + 320 - free )) > /proc/sys/vm/nr_hugepages
  free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  [ "$free" -ge 320 ] || fail "could not reserve 320 free hugepages of 2 MiB (have $free)"
fi

dir=$(mktemp -d /tmp/emu-dpdk-ref.XXXXXX)
mkdir "$dir/huge"
mount -t hugetlbfs -o pagesize=2M nodev "$dir/huge" || fail "could not mount hugetlbfs"
cleanup() {
  [ -n "${vhost:-}" ] && kill "$vhost" 2>/dev/null && wait "$vhost" 2>/dev/null
  umount "$dir/huge" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

eal="--no-pci -m 256 --single-file-segments --huge-dir $dir/huge"
# testpmd sizes its mbuf pool for every port it could have (about 600 MiB, beyond -m, which only
# preallocates): 16384 mbufs are plenty for 1024-descriptor rings and keep both sides in 256 MiB.
mbufs="--total-num-mbufs=16384"
# The vhost side forwards whatever it receives back out (io mode), pinned to CPU 0.
sleep $((SECONDS_ + 20)) | dpdk-testpmd --lcores '0@0,1@0' $eal --file-prefix=emuref-vh$$ \
  --vdev "net_vhost0,iface=$dir/vhost.sock,queues=1" -- \
  --nb-cores=1 --txd=1024 --rxd=1024 $mbufs --forward-mode=io --auto-start >"$dir/vhost.log" 2>&1 &
vhost=$!
for _ in $(seq 100); do [ -S "$dir/vhost.sock" ] && break; sleep 0.1; done
[ -S "$dir/vhost.sock" ] || fail "the vhost-user testpmd did not start: $(tail -3 "$dir/vhost.log")"

# The virtio side, pinned to CPU 1: 16 bursts to start the loop, then stats after a warm-up second
# (resets the rate's baseline) and after SECONDS.
{
  sleep 3
  echo "start tx_first 16"
  sleep 1
  echo "show port stats all"
  sleep "$SECONDS_"
  echo "show port stats all"
  echo "stop"
  echo "quit"
} | dpdk-testpmd --lcores '0@1,1@1' $eal --file-prefix=emuref-vu$$ \
  --vdev "net_virtio_user0,path=$dir/vhost.sock,queues=1" -- \
  -i --nb-cores=1 --txd=1024 --rxd=1024 $mbufs --txpkts="$FRAME" >"$dir/virtio.log" 2>&1
grep -q "Rx-pps" "$dir/virtio.log" || fail "the virtio-user testpmd printed no stats: $(tail -3 "$dir/virtio.log")"
grep -E "Rx-pps|Tx-pps" "$dir/virtio.log" | tail -2
