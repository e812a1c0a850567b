#!/bin/bash
# The native tests that run threads against an AddressSanitizer + UndefinedBehaviorSanitizer build of
# the module, with the lock order checked at every acquisition (src/base/lock_order.h): the ring walks on
# random descriptors (lib/iavf-rings.test.ts), the data plane's worker under DMA_UNMAP and munmap with
# full traffic (lib/dataplane.test.ts), the socket thread's trap answering on randomly split streams
# with fds (lib/trap-channel.test.ts), the interrupt vectors, lines and writers the worker, the socket
# thread and the interrupt timer share (lib/iavf-vectors.test.ts, lib/irq-lines.test.ts), the stall
# detector (lib/watchdog.test.ts), the closer of client files (lib/client-files.test.ts), and two emu_iavf devices on the data plane driven by SoftIavf
# (driver-iavf's data-plane.test.ts). The build goes to a temporary folder (the committed prebuild and
# any build/ are left alone) and is loaded through EMU_NATIVE_BINDING; ASan's runtime is preloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/emu-native-asan.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r binding.gyp src scripts package.json "$work/"
ln -s "$PWD/node_modules" "$work/node_modules"
# Node's own headers, offline (as scripts/prebuild.mjs does).
prefix=$(dirname "$(dirname "$(command -v node)")")
[ -f "$prefix/include/node/common.gypi" ] && export npm_config_nodedir="$prefix"
echo "sanitizers: building with -fsanitize=address,undefined in $work"
(cd "$work" && CXXFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -DEMU_LOCK_ORDER_CHECKS" \
  LDFLAGS="-fsanitize=address,undefined" ./node_modules/.bin/node-gyp rebuild >"$work/build.log" 2>&1) \
  || { tail -20 "$work/build.log"; exit 1; }
export EMU_NATIVE_BINDING="$work/build/Release/emu_native.node"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# Node's own allocations at exit are not ours to report; any error in ours stops the run.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mocha --no-config --node-option import=tsx --timeout 60000 \
  lib/iavf-rings.test.ts lib/dataplane.test.ts lib/trap-channel.test.ts lib/iavf-vectors.test.ts \
  lib/irq-lines.test.ts lib/watchdog.test.ts lib/client-files.test.ts \
  ../packages/driver-iavf/src/data-plane.test.ts
# The lock order's checks are on in this build: a violation aborts, naming both locks.
if probe=$(node -e "require(process.env.EMU_NATIVE_BINDING).lockOrderProbe()" 2>&1); then
  echo "sanitizers: the lock order probe did not abort"; exit 1
fi
grep -q "lock order violated: a worker's (rank 20) taken while holding a switch's (rank 30)" <<<"$probe" ||
  { echo "sanitizers: the lock order probe aborted without naming the locks: $probe"; exit 1; }
echo "sanitizers: lock order checks on (the probe aborted as it should)"
