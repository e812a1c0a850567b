/**
 * bootGuest(): one QEMU (TCG) guest per call, run inside the cached trixie chroot in a private mount
 * namespace. The namespace holds every mount the boot needs (/proc and the bind-mounted socket
 * directories), so they disappear with QEMU however it ends, and concurrent boots never share a mount.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { buildBootInitramfs, type ParsedConsole, parseConsole } from './initramfs.js';
import { parseModuleSpec, resolveModules } from './modules.js';
import { ensureGuestEnvironment, loadModuleIndex, modulesInitramfs } from './setup.js';

export interface VfioUserSocket {
  /** host path of the vfio-user server's listening UNIX socket */
  path: string;
  /** PCI slot on bus 0 (default: 2 + index, so the first device is 0000:00:02.0) */
  slot?: number;
  /** extra vfio-user-pci properties, e.g. `{ 'x-msg-timeout': 20000 }` */
  props?: Record<string, string | number | boolean>;
}

export interface BootGuestOptions {
  /** vfio-user sockets; each becomes one `vfio-user-pci` device */
  sockets?: readonly (string | VfioUserSocket)[];
  /** shell script run by busybox sh in the guest (cwd /emu, stdin /dev/null) */
  script: string;
  /** kernel modules to load at boot, with their dependencies, e.g. `['vfio-pci']`;
   *  parameters may follow the name: `'vfio_iommu_type1 allow_unsafe_interrupts=1'` */
  modules?: readonly string[];
  /** extra files for the guest: absolute guest path → contents */
  files?: Record<string, string | Uint8Array>;
  /** appended to the kernel command line (later words override earlier ones) */
  kernelArgs?: string;
  /** guest RAM, default 512 */
  memoryMiB?: number;
  /** guest RAM in a shared memfd (default true); false gives plain RAM, so DMA maps carry no fd */
  sharedMemory?: boolean;
  /** let the guest reboot: QEMU resets the machine (every device gets its reset) and boots the same
   *  kernel and initramfs, so the script runs again. Default false: a reboot ends QEMU (-no-reboot). */
  reboot?: boolean;
  /** guest CPUs, default 1 */
  cpus?: number;
  /** default 120000; QEMU is killed when it passes */
  timeoutMs?: number;
  /** add an emulated Intel VT-d IOMMU (`intel-iommu,caching-mode=on,intremap=on`) and boot with
   *  intel_iommu=on, so guest VFIO works in normal (type1) mode: trixie's kernel has no VFIO_NOIOMMU.
   *  Default: on when `modules` asks for vfio-pci (vfio_iommu_type1 is then loaded too), else off. */
  iommu?: boolean;
  /** each serial-console line as it arrives (without the line ending) */
  onConsole?: (line: string) => void;
  /** more QEMU arguments, appended last */
  extraQemuArgs?: readonly string[];
  /** default: $EMU_GUEST_CACHE or /var/cache/emu-guest */
  cacheDir?: string;
  /** setup progress, if the cache isn't ready yet (default: stderr) */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface GuestDevice {
  socket: string;
  /** PCI address in the guest, e.g. 0000:00:02.0 */
  bdf: string;
}

export interface BootGuestResult {
  /** what the script printed between the markers */
  output: string;
  /** the whole serial console log (CRLF turned into LF) */
  console: string;
  /** the script's exit status; null if it never finished (timeout, crash, QEMU error) */
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  /** QEMU's own exit status / signal */
  qemuExitStatus: number | null;
  qemuSignal: NodeJS.Signals | null;
  /** QEMU's stderr (warnings, or why it refused to start) */
  qemuStderr: string;
  devices: GuestDevice[];
  /** modules loaded by /init */
  modules: ParsedConsole['modules'];
  /** whether the guest had the emulated IOMMU */
  iommu: boolean;
  /** the full command, for reproducing by hand (paths inside the chroot) */
  qemuArgs: string[];
}

export const DEFAULT_KERNEL_ARGS = 'console=ttyS0 panic=-1 loglevel=4 rdinit=/init';

let bootCounter = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes what boots of dead processes (killed before their cleanup ran) left under /run/emu-guest. */
async function cleanupStaleBootDirs(runDir: string): Promise<void> {
  const dirs = await readdir(runDir).catch(() => [] as string[]);
  for (const d of dirs) {
    const pid = Number(d.split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    await removeBootDir(join(runDir, d));
  }
}

/** Non-recursive on purpose: only our initrd and the (now unmounted) mount points. */
async function removeBootDir(dir: string): Promise<void> {
  await unlink(join(dir, 'initrd.cpio')).catch(() => {});
  for (const e of await readdir(dir).catch(() => [] as string[])) {
    if (/^s\d+$/.test(e)) await rmdir(join(dir, e)).catch(() => {});
  }
  await rmdir(dir).catch(() => {});
}

function normalizeSocket(s: string | VfioUserSocket, i: number): Required<VfioUserSocket> {
  const o = typeof s === 'string' ? { path: s } : s;
  return { path: resolve(o.path), slot: o.slot ?? 2 + i, props: o.props ?? {} };
}

export async function bootGuest(opts: BootGuestOptions): Promise<BootGuestResult> {
  if (process.getuid?.() !== 0)
    throw new Error('@emu/guest: bootGuest needs root (mount namespace + chroot)');
  const env = await ensureGuestEnvironment({ cacheDir: opts.cacheDir, onProgress: opts.onProgress });
  const memoryMiB = opts.memoryMiB ?? 512;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const sockets = (opts.sockets ?? []).map(normalizeSocket);
  for (const s of sockets) {
    const st = await stat(s.path).catch(() => null);
    if (!st?.isSocket()) throw new Error(`vfio-user socket ${s.path} does not exist or is not a socket`);
    if (s.slot < 1 || s.slot > 0x1e) throw new Error(`PCI slot ${s.slot} out of range 1..30`);
  }

  const moduleSpecs = [...(opts.modules ?? [])];
  const requested = moduleSpecs.map((m) => parseModuleSpec(m).name);
  const iommu = opts.iommu ?? requested.includes('vfio_pci');
  if (iommu && requested.includes('vfio_pci') && !requested.includes('vfio_iommu_type1')) {
    moduleSpecs.push('vfio_iommu_type1');
  }

  // initramfs = base (cached) + modules (cached per set) + this boot's archive
  const nonce = randomBytes(8).toString('hex');
  const resolution = resolveModules(
    await loadModuleIndex(env.rootfs, env.manifest.kernel.release),
    moduleSpecs,
  );
  const modulesCpio = await modulesInitramfs(env, resolution);
  const bootCpio = buildBootInitramfs({
    nonce,
    script: opts.script,
    modules: resolution.modules,
    files: opts.files,
  });
  const parts: Buffer[] = [await readFile(env.baseInitramfsPath)];
  if (modulesCpio) parts.push(await readFile(modulesCpio));
  parts.push(bootCpio);

  await cleanupStaleBootDirs(join(env.rootfs, 'run/emu-guest'));
  const id = `${process.pid}-${++bootCounter}-${nonce.slice(0, 6)}`;
  const bootDirInChroot = `/run/emu-guest/${id}`;
  const bootDir = join(env.rootfs, bootDirInChroot);
  await mkdir(bootDir, { recursive: true });
  const initrdInChroot = `${bootDirInChroot}/initrd.cpio`;
  await writeFile(join(env.rootfs, initrdInChroot), Buffer.concat(parts));

  const binds: [string, string][] = [];
  const devices: GuestDevice[] = [];
  const deviceArgs: string[] = [];
  if (iommu) deviceArgs.push('-device', 'intel-iommu,caching-mode=on,intremap=on');
  sockets.forEach((s, i) => {
    const mountPoint = `${bootDirInChroot}/s${i}`;
    binds.push([dirname(s.path), mountPoint]);
    const dev = {
      driver: 'vfio-user-pci',
      socket: { path: `${mountPoint}/${basename(s.path)}`, type: 'unix' },
      addr: `${s.slot.toString(16)}.0`,
      ...s.props,
    };
    deviceArgs.push('-device', JSON.stringify(dev));
    devices.push({ socket: s.path, bdf: `0000:00:${s.slot.toString(16).padStart(2, '0')}.0` });
  });
  for (const [, mp] of binds) await mkdir(join(env.rootfs, mp), { recursive: true });

  const append = [DEFAULT_KERNEL_ARGS, iommu ? 'intel_iommu=on' : '', opts.kernelArgs ?? '']
    .filter(Boolean)
    .join(' ');
  const qemuArgs = [
    env.manifest.qemu.binary,
    '-M',
    'q35,memory-backend=mem',
    '-object',
    // Shared memfd RAM lets a vfio-user server mmap guest memory; without it every DMA_MAP comes
    // without an fd and the server must use DMA_READ / DMA_WRITE messages.
    opts.sharedMemory === false
      ? `memory-backend-ram,id=mem,size=${memoryMiB}M`
      : `memory-backend-memfd,id=mem,size=${memoryMiB}M,share=on`,
    '-m',
    `${memoryMiB}M`,
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-smp',
    String(opts.cpus ?? 1),
    '-nodefaults',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    ...(opts.reboot ? [] : ['-no-reboot']),
    '-kernel',
    env.manifest.kernel.image,
    '-initrd',
    initrdInChroot,
    '-append',
    append,
    ...deviceArgs,
    ...(opts.extraQemuArgs ?? []),
  ];

  // In a private mount namespace: bind the socket directories, mount /proc, chroot, exec QEMU.
  // setpriv --pdeathsig kills QEMU if we die; every exec keeps the pid, so child.pid is QEMU's.
  const nsScript = [
    'set -e',
    'root=$1; n=$2; shift 2',
    'while [ "$n" -gt 0 ]; do mount --bind "$1" "$root$2"; shift 2; n=$((n-1)); done',
    'mount -t proc proc "$root/proc"',
    'exec setpriv --pdeathsig KILL chroot "$root" "$@"',
  ].join('\n');
  const args = [
    '--mount',
    '--propagation',
    'private',
    '/bin/sh',
    '-c',
    nsScript,
    'emu-guest',
    env.rootfs,
    String(binds.length),
    ...binds.flat(),
    ...qemuArgs,
  ];

  const started = Date.now();
  let consoleText = '';
  let pending = '';
  let stderrText = '';
  let timedOut = false;
  const emitLines = (final: boolean) => {
    if (!opts.onConsole) return;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    if (final && pending) lines.push(pending);
    if (final) pending = '';
    for (const l of lines) opts.onConsole(l.replace(/\r+$/, ''));
  };

  try {
    const { status, signal } = await new Promise<{ status: number | null; signal: NodeJS.Signals | null }>(
      (resolvePromise, reject) => {
        const child = spawn('unshare', args, {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' },
        });
        const kill = () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        };
        const timer = setTimeout(() => {
          timedOut = true;
          kill();
        }, timeoutMs);
        const onAbort = () => kill();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        child.stdout.on('data', (d: Buffer) => {
          const s = d.toString('utf8');
          consoleText += s;
          pending += s;
          emitLines(false);
        });
        child.stderr.on('data', (d: Buffer) => {
          stderrText += d.toString('utf8');
        });
        child.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.on('close', (code, sig) => {
          clearTimeout(timer);
          opts.signal?.removeEventListener('abort', onAbort);
          child.stdin.destroy();
          resolvePromise({ status: code, signal: sig });
        });
        if (opts.signal?.aborted) kill();
      },
    );
    emitLines(true);
    const consoleNorm = consoleText.replace(/\r+\n/g, '\n');
    const parsed = parseConsole(consoleText, nonce);
    return {
      output: parsed.output,
      console: consoleNorm,
      exitCode: parsed.exitCode,
      durationMs: Date.now() - started,
      timedOut,
      qemuExitStatus: status,
      qemuSignal: signal,
      qemuStderr: stderrText,
      devices,
      modules: parsed.modules,
      iommu,
      qemuArgs,
    };
  } finally {
    // Only our own files and empty mount points; the mounts lived in the namespace that just ended.
    await removeBootDir(bootDir);
  }
}
