#!/usr/bin/env bash
# DPDK testpmd (Debian trixie DPDK 24.11, iavf PMD) in a QEMU guest against two emu_iavf devices.
#
# Proves that DPDK's userspace iavf driver (not the Linux kernel one) initializes emu's emulated
# iavf VF over vfio-pci in the guest, starts both ports (virtchnl over the admin queue, misc
# interrupts), turns VLAN stripping on (`vlan set strip on`) and forwards traffic between them through
# emu's switch (io forwarding, tx_first).
#
# Usage: sudo tools/guest/scripts/dpdk-testpmd.sh        (root; network for apt on the first run)
# Env:   EMU_GUEST_CACHE (default /var/cache/emu-guest), FWD_SECONDS (default 15)
# Exit:  0 PASS, 1 FAIL. The guest log and emu's log are kept in the printed directory.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
CACHE=${EMU_GUEST_CACHE:-/var/cache/emu-guest}
FWD_SECONDS=${FWD_SECONDS:-15}
PMDS=usr/lib/x86_64-linux-gnu/dpdk/pmds-25.0

log() { echo "dpdk-testpmd: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot, QEMU guest)"

# 1-2. The guest environment and the DPDK tarball the guest unpacks.
TARBALL=$(bash "$REPO/tools/guest/scripts/dpdk-tarball.sh")

# 3. emu with two iavf VFs on one switch.
DIR=$(mktemp -d /tmp/emu-dpdk-testpmd.XXXXXX)
EMU_PID=
cleanup() {
  if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
    kill -TERM "$EMU_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$EMU_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$EMU_PID" 2>/dev/null || true
  fi
  rm -f "$DIR/a.sock" "$DIR/b.sock"
}
trap cleanup EXIT

log "starting emu (logs in $DIR)"
node "$REPO/packages/cli/bin/emu.js" \
  --vdev "emu_iavf0,path=$DIR/a.sock,mac=02:00:00:00:00:0a,queues=2" \
  --vdev "emu_iavf1,path=$DIR/b.sock,mac=02:00:00:00:00:0b,queues=2" \
  --status 5 >"$DIR/emu.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 300); do
  [ -S "$DIR/a.sock" ] && [ -S "$DIR/b.sock" ] && break
  kill -0 "$EMU_PID" 2>/dev/null || { cat "$DIR/emu.log" >&2; die "emu exited"; }
  sleep 0.1
done
[ -S "$DIR/a.sock" ] && [ -S "$DIR/b.sock" ] || { cat "$DIR/emu.log" >&2; die "emu sockets never appeared"; }

# 4. The guest: unpack DPDK, hugepages, bind both VFs to vfio-pci, drive testpmd on stdin.
cat >"$DIR/guest.sh" <<EOF
chmod 755 / /usr /usr/lib 2>/dev/null
cd / && tar -xf /emu/dpdk.tar && rm /emu/dpdk.tar
mkdir -p /dev/hugepages /var/run
mount -t hugetlbfs nodev /dev/hugepages
echo 256 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
for d in 0000:00:02.0 0000:00:03.0; do
  echo vfio-pci > /sys/bus/pci/devices/\$d/driver_override
  echo \$d > /sys/bus/pci/drivers_probe
done
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
LOG=/tmp/testpmd.log
: > \$LOG
# wait until testpmd has printed its prompt N times (each command ends with a new prompt)
prompts() { grep -c 'testpmd>' \$LOG 2>/dev/null || true; }
wait_prompt() { n=\$1; t=\$2; while [ "\$(prompts)" -lt "\$n" ] && [ "\$t" -gt 0 ]; do sleep 1; t=\$((t-1)); done; }
{
  wait_prompt 1 120
  echo "port start all"; wait_prompt 2 60; sleep 3
  echo "set fwd io"; wait_prompt 3 10
  # VLAN stripping on both ports (ENABLE_VLAN_STRIPPING_V2 at runtime); forwarding must go on.
  echo "vlan set strip on 0"; wait_prompt 4 10
  echo "vlan set strip on 1"; wait_prompt 5 10
  # ethdev keeps the offload only if the PF accepted it ("strip on" in the port info).
  echo "show port info 0"; wait_prompt 6 10
  echo "show port info 1"; wait_prompt 7 10
  echo "start tx_first"; sleep $FWD_SECONDS
  echo "show port stats all"; wait_prompt 9 30
  echo "stop"; wait_prompt 10 30
  echo "quit"; t=30; while [ \$t -gt 0 ] && ! grep -q '^Bye' \$LOG; do sleep 1; t=\$((t-1)); done
} | timeout -s INT 300 /usr/bin/dpdk-testpmd -l 0-1 -n 1 -a 0000:00:02.0 -a 0000:00:03.0 \\
  -d /$PMDS/librte_mempool_ring.so.25 --log-level='pmd.net.iavf.*:debug' \\
  -- -i --disable-rss --rxq=1 --txq=1 --eth-peer=0,02:00:00:00:00:0b --eth-peer=1,02:00:00:00:00:0a \\
  --rxd=256 --txd=256 --total-num-mbufs=4096 > \$LOG 2>&1
rc=\$?
cat \$LOG
echo "testpmd rc=\$rc"
exit \$rc
EOF

log "booting the guest (~30 s under TCG)"
GUEST_RC=0
node "$REPO/tools/guest/bin/emu-guest.js" boot \
  --socket "$DIR/a.sock" --socket "$DIR/b.sock" --module vfio-pci \
  --memory 1536 --cpus 2 --timeout 480 \
  --file "/emu/dpdk.tar=$TARBALL" --script "$DIR/guest.sh" \
  >"$DIR/guest.log" 2>"$DIR/guest.err" || GUEST_RC=$?
sleep 6 # one more emu status line after the guest is gone

# 5. Verdict.
GLOG=$DIR/guest.log
problems=()
[ "$GUEST_RC" = 0 ] || problems+=("guest exit status $GUEST_RC ($(tail -1 "$DIR/guest.err" 2>/dev/null))")
for pat in "Fail to start port" "No response for cmd" "command mismatch" "failed diag"; do
  n=$(grep -c "$pat" "$GLOG" || true)
  [ "$n" = 0 ] || problems+=("$n x '$pat'")
done
# testpmd prints "Port N: <MAC>" once port N has started (at init in -i mode; 'port start all' is
# then a no-op that says "Please stop the ports first").
grep -q '^Port 0: 02:00:00:00:00:0A' "$GLOG" || problems+=("port 0 never started")
grep -q '^Port 1: 02:00:00:00:00:0B' "$GLOG" || problems+=("port 1 never started")
strips=$(grep -c '^ *strip on, ' "$GLOG" || true)
[ "$strips" = 2 ] || problems+=("VLAN stripping on in $strips of 2 ports' info")
# The NIC statistics blocks printed by 'show port stats all': port, RX-packets, RX-errors, TX-errors
stats=$(awk '
  /NIC statistics for port/ { port = $(NF-1); next }
  /^ *#+ *$/ { port = "" } # end of the block (the Forward statistics after stop look alike)
  port != "" && /RX-packets:/ { rx[port] = $2 }
  port != "" && /RX-errors:/ { rxe[port] = $2 }
  port != "" && /TX-packets:/ { tx[port] = $2; txe[port] = $4; seen[port] = 1 }
  END { for (p = 0; p <= 1; p++) if (seen[p]) print p, rx[p], rxe[p], tx[p], txe[p]; else print p, "-", "-", "-", "-" }
' "$GLOG")
summary=""
while read -r port rx rxe tx txe; do
  summary+=" port$port: rx=$rx tx=$tx rx_errors=$rxe tx_errors=$txe;"
  if [ "$rx" = - ]; then problems+=("no stats for port $port"); continue; fi
  [ "$rx" -gt 1000 ] || problems+=("port $port RX-packets $rx <= 1000")
  [ "$rxe" = 0 ] || problems+=("port $port RX-errors $rxe")
  [ "$txe" = 0 ] || problems+=("port $port TX-errors $txe")
done <<<"$stats"

echo "emu status (last lines):"
grep -E '^\[[0-9:]+\] emu_iavf[01] ' "$DIR/emu.log" | tail -2 | sed 's/^/  /' || true
echo "logs: $GLOG (guest), $DIR/emu.log (emu)"
if [ ${#problems[@]} -eq 0 ]; then
  echo "PASS: dpdk-testpmd io-forward between emu_iavf0 and emu_iavf1 —${summary%;}"
  exit 0
fi
echo "FAIL: dpdk-testpmd —${summary%;}"
printf '  problem: %s\n' "${problems[@]}"
exit 1
