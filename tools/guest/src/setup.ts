/**
 * ensureGuestEnvironment(): builds (once) and checks (every time, in milliseconds) the guest cache:
 *
 *   $EMU_GUEST_CACHE (default /var/cache/emu-guest)
 *   ├── rootfs/                 debootstrap --variant=minbase trixie + qemu-system-x86 (trixie-backports)
 *   │                           + linux-image-amd64 (trixie) + busybox-static; QEMU runs here via chroot
 *   ├── bin/busybox             static busybox (copied from rootfs/usr/bin/busybox)
 *   ├── bin/emu-*               guest/emu-*.c (the guest programs) built with the host's gcc -static
 *   ├── modules/<release>/…     decompressed .ko files (busybox insmod can't read .ko.xz)
 *   ├── initramfs/base-*.cpio   busybox + /init + programs; modules-*.cpio per module set
 *   ├── stamps/*.json           what was built from what; a step reruns when its inputs change
 *   ├── logs/setup.log          output of the slow commands
 *   ├── manifest.json           versions (QEMU, kernel, busybox) and paths
 *   └── .lock                   flock(1) lock held while building
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { buildBaseInitramfs, buildModulesInitramfs, initScript, type ModuleFile } from './initramfs.js';
import {
  type ModuleIndex,
  type ModuleResolution,
  parseModulesDep,
  resolveModules,
  uncompressedPath,
} from './modules.js';
import {
  capture,
  captureBuffer,
  packageRoot,
  run,
  sha256,
  which,
  withFileLock,
  writeFileAtomic,
} from './util.js';

export const DEFAULT_CACHE_DIR = '/var/cache/emu-guest';
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** modules decompressed at setup so the usual VFIO boots need no extra work */
export const DEFAULT_MODULE_SET = ['vfio-pci', 'vfio_iommu_type1'];

const ROOTFS_RECIPE_VERSION = 1;
/** manifest.json's layout (2: the guest programs by name). */
const SCHEMA = 2;
const PROGRAM_CFLAGS = ['-static', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter'];

/** Kernel config options recorded in the manifest. */
const KERNEL_CONFIG_KEYS = [
  'VFIO',
  'VFIO_PCI',
  'VFIO_NOIOMMU',
  'VFIO_CONTAINER',
  'VFIO_IOMMU_TYPE1',
  'IOMMUFD',
  'INTEL_IOMMU',
  'IRQ_REMAP',
  'PCI_MSI',
  'MODULE_COMPRESS_XZ',
  'MODULE_COMPRESS_ZSTD',
  'MODULE_DECOMPRESS',
  'DEVMEM',
  'STRICT_DEVMEM',
  'IO_STRICT_DEVMEM',
  'UIO_PCI_GENERIC',
];

export interface GuestManifest {
  schema: 2;
  cacheDir: string;
  updatedAt: string;
  debian: { suite: 'trixie'; mirror: string; backports: string };
  qemu: { package: string; version: string; binary: string };
  kernel: {
    package: string;
    /** `uname -r` in the guest, e.g. 6.12.117+deb13-amd64 */
    release: string;
    /** inside the chroot */
    image: string;
    config: Record<string, string | null>;
  };
  busybox: { package: string; version: string; sha256: string };
  /** the guest programs, by name */
  programs: Record<string, { sha256: string; sourceSha256: string }>;
  /** relative to cacheDir */
  baseInitramfs: string;
  initSha256: string;
}

export interface GuestEnvironment {
  cacheDir: string;
  rootfs: string;
  manifest: GuestManifest;
  /** absolute host path of the kernel image */
  kernelPath: string;
  /** absolute host path of the cached base initramfs */
  baseInitramfsPath: string;
}

export interface GuestEnvironmentOptions {
  /** default: $EMU_GUEST_CACHE or /var/cache/emu-guest */
  cacheDir?: string;
  /** progress lines (default: written to stderr) */
  onProgress?: (line: string) => void;
  /** throw away the rootfs and everything built from it, and build again */
  rebuild?: boolean;
  /** Debian mirror (default $EMU_GUEST_MIRROR or http://deb.debian.org/debian) */
  mirror?: string;
}

export function guestCacheDir(cacheDir?: string): string {
  return cacheDir ?? process.env.EMU_GUEST_CACHE ?? DEFAULT_CACHE_DIR;
}

function defaultProgress(line: string): void {
  process.stderr.write(`${line}\n`);
}

function rootfsRecipe(mirror: string) {
  return {
    version: ROOTFS_RECIPE_VERSION,
    suite: 'trixie',
    variant: 'minbase',
    mirror,
    backports: ['qemu-system-x86'],
    packages: ['qemu-system-x86', 'linux-image-amd64', 'busybox-static'],
  };
}

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/**
 * The guest programs: each guest/NAME.c, built static, is /usr/bin/NAME in the guest — emu-vfio-probe
 * (VFIO from inside the guest) and emu-net (raw frames, SCTP).
 */
export const GUEST_PROGRAMS = ['emu-vfio-probe', 'emu-net'] as const;

function programSourcePath(name: string): string {
  return join(packageRoot(), 'guest', `${name}.c`);
}

async function programSourceHash(name: string): Promise<string> {
  const src = await readFile(programSourcePath(name));
  return sha256(Buffer.concat([src, Buffer.from(PROGRAM_CFLAGS.join(' '))]));
}

function baseInitramfsName(busyboxSha: string, programs: Record<string, { sha256: string }>): string {
  const programShas = GUEST_PROGRAMS.map((n) => `${n}=${programs[n]?.sha256 ?? ''}`).join('\n');
  return `initramfs/base-${sha256(`${busyboxSha}\n${programShas}\n${initScript()}`).slice(0, 16)}.cpio`;
}

/** The checks of the fast path: everything present and built from the current inputs. */
async function isReady(cacheDir: string, mirror: string): Promise<GuestEnvironment | null> {
  const manifest = await readJson<GuestManifest>(join(cacheDir, 'manifest.json'));
  if (manifest?.schema !== SCHEMA) return null;
  const rootfsStamp = await readJson<unknown>(join(cacheDir, 'stamps', 'rootfs.json'));
  if (JSON.stringify(rootfsStamp) !== JSON.stringify(rootfsRecipe(mirror))) return null;
  for (const name of GUEST_PROGRAMS) {
    const stamp = await readJson<{ sourceSha256: string }>(join(cacheDir, 'stamps', `${name}.json`));
    if (!stamp || stamp.sourceSha256 !== (await programSourceHash(name))) return null;
    if (manifest.programs?.[name]?.sourceSha256 !== stamp.sourceSha256) return null;
  }
  if (manifest.initSha256 !== sha256(initScript())) return null;
  if (manifest.baseInitramfs !== baseInitramfsName(manifest.busybox.sha256, manifest.programs)) return null;
  const rootfs = join(cacheDir, 'rootfs');
  const kernelPath = join(rootfs, manifest.kernel.image);
  const baseInitramfsPath = join(cacheDir, manifest.baseInitramfs);
  if (!existsSync(kernelPath) || !existsSync(baseInitramfsPath)) return null;
  if (!existsSync(join(rootfs, manifest.qemu.binary))) return null;
  return { cacheDir, rootfs, manifest, kernelPath, baseInitramfsPath };
}

/**
 * Makes sure the guest cache is complete. The first run takes a couple of minutes (debootstrap and
 * package downloads); later runs only check stamps. Concurrent callers serialize on a flock.
 */
export async function ensureGuestEnvironment(opts: GuestEnvironmentOptions = {}): Promise<GuestEnvironment> {
  const cacheDir = guestCacheDir(opts.cacheDir);
  const mirror = opts.mirror ?? process.env.EMU_GUEST_MIRROR ?? DEFAULT_MIRROR;
  const progress = opts.onProgress ?? defaultProgress;
  if (!opts.rebuild) {
    const ready = await isReady(cacheDir, mirror);
    if (ready) return ready;
  }
  if (process.getuid?.() !== 0) {
    throw new Error('@emu/guest: setup needs root (debootstrap, chroot, mount namespaces)');
  }
  await mkdir(cacheDir, { recursive: true });
  const started = Date.now();
  return withFileLock(
    join(cacheDir, '.lock'),
    () => progress(`guest: waiting for another setup to finish (lock ${join(cacheDir, '.lock')})…`),
    async () => {
      // Another process may have finished the work while we waited.
      if (!opts.rebuild) {
        const ready = await isReady(cacheDir, mirror);
        if (ready) return ready;
      }
      const env = await build(cacheDir, mirror, progress, !!opts.rebuild);
      progress(
        `guest: ready in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
          `(QEMU ${env.manifest.qemu.version}, kernel ${env.manifest.kernel.release}, cache ${cacheDir})`,
      );
      return env;
    },
  );
}

async function build(
  cacheDir: string,
  mirror: string,
  progress: (line: string) => void,
  rebuild: boolean,
): Promise<GuestEnvironment> {
  const logDir = join(cacheDir, 'logs');
  await mkdir(logDir, { recursive: true });
  await mkdir(join(cacheDir, 'stamps'), { recursive: true });
  await mkdir(join(cacheDir, 'bin'), { recursive: true });
  const logFile = join(logDir, 'setup.log');
  await writeFile(logFile, `# emu-guest setup ${new Date().toISOString()}\n`, { flag: 'a' });
  const rootfs = join(cacheDir, 'rootfs');

  // 1. rootfs
  const recipe = rootfsRecipe(mirror);
  const rootfsStampPath = join(cacheDir, 'stamps', 'rootfs.json');
  const rootfsStamp = await readJson<unknown>(rootfsStampPath);
  if (rebuild || JSON.stringify(rootfsStamp) !== JSON.stringify(recipe) || !existsSync(rootfs)) {
    await rm(rootfsStampPath, { force: true });
    await ensureHostPackages(['debootstrap'], progress, logFile);
    await buildRootfs(cacheDir, mirror, progress, logFile);
    await writeFileAtomic(rootfsStampPath, JSON.stringify(recipe));
  }

  // 2. busybox
  const busyboxPath = join(cacheDir, 'bin', 'busybox');
  await copyFile(join(rootfs, 'usr/bin/busybox'), `${busyboxPath}.tmp`);
  await rename(`${busyboxPath}.tmp`, busyboxPath);
  const busybox = await readFile(busyboxPath);
  const applets = (await capture(busyboxPath, ['--list-full'])).split('\n').filter(Boolean);

  // 3. the guest programs
  const programs: Record<string, Uint8Array> = {};
  const programInfo: GuestManifest['programs'] = {};
  for (const name of GUEST_PROGRAMS) {
    const path = join(cacheDir, 'bin', name);
    const stampPath = join(cacheDir, 'stamps', `${name}.json`);
    const sourceSha256 = await programSourceHash(name);
    const stamp = await readJson<{ sourceSha256: string }>(stampPath);
    if (rebuild || stamp?.sourceSha256 !== sourceSha256 || !existsSync(path)) {
      progress(`guest: compiling ${name} (gcc -static)…`);
      if (!existsSync('/usr/lib/x86_64-linux-gnu/libc.a') || !which('gcc')) {
        await ensureHostPackages(['gcc', 'libc6-dev'], progress, logFile, true);
      }
      await run('gcc', [...PROGRAM_CFLAGS, '-o', `${path}.tmp`, programSourcePath(name)], { logFile });
      await rename(`${path}.tmp`, path);
      await writeFileAtomic(stampPath, JSON.stringify({ sourceSha256 }));
    }
    programs[name] = await readFile(path);
    programInfo[name] = { sha256: sha256(programs[name]), sourceSha256 };
  }

  // 4. versions and kernel facts
  const kernel = await findKernel(rootfs);
  const config = parseKernelConfig(await readFile(join(rootfs, 'boot', `config-${kernel.release}`), 'utf8'));
  const pkgs = await dpkgVersions(rootfs, [
    'qemu-system-x86',
    'linux-image-amd64',
    `linux-image-${kernel.release}`,
    'busybox-static',
  ]);
  const qemuVersionLine = (await run('chroot', [rootfs, '/usr/bin/qemu-system-x86_64', '--version'])).split(
    '\n',
  )[0];
  const qemuVersion = /version (\S+)/.exec(qemuVersionLine)?.[1] ?? qemuVersionLine;
  const busyboxVersion =
    /BusyBox v(\S+)/.exec(await capture(busyboxPath, ['--help']).catch(() => ''))?.[1] ?? '';

  // 5. the default module set
  progress(`guest: preparing kernel modules ${DEFAULT_MODULE_SET.join(', ')}…`);
  const modIndex = await loadModuleIndex(rootfs, kernel.release);
  await prepareModuleFiles(
    cacheDir,
    rootfs,
    kernel.release,
    resolveModules(modIndex, DEFAULT_MODULE_SET),
    busyboxPath,
  );

  // 6. the base initramfs
  const busyboxSha = sha256(busybox);
  const baseName = baseInitramfsName(busyboxSha, programInfo);
  if (!existsSync(join(cacheDir, baseName))) {
    progress('guest: building the base initramfs…');
    await writeFileAtomic(join(cacheDir, baseName), buildBaseInitramfs({ busybox, applets, programs }));
  }
  for (const f of await readdir(join(cacheDir, 'initramfs'))) {
    if (f.startsWith('base-') && `initramfs/${f}` !== baseName)
      await rm(join(cacheDir, 'initramfs', f), { force: true });
  }

  const manifest: GuestManifest = {
    schema: SCHEMA,
    cacheDir,
    updatedAt: new Date().toISOString(),
    debian: { suite: 'trixie', mirror, backports: 'trixie-backports' },
    qemu: {
      package: pkgs['qemu-system-x86'] ?? '',
      version: qemuVersion,
      binary: '/usr/bin/qemu-system-x86_64',
    },
    kernel: {
      package: pkgs[`linux-image-${kernel.release}`] ?? pkgs['linux-image-amd64'] ?? '',
      release: kernel.release,
      image: kernel.image,
      config: Object.fromEntries(KERNEL_CONFIG_KEYS.map((k) => [k, config.get(k) ?? null])),
    },
    busybox: { package: pkgs['busybox-static'] ?? '', version: busyboxVersion, sha256: busyboxSha },
    programs: programInfo,
    baseInitramfs: baseName,
    initSha256: sha256(initScript()),
  };
  await writeFileAtomic(join(cacheDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return {
    cacheDir,
    rootfs,
    manifest,
    kernelPath: join(rootfs, kernel.image),
    baseInitramfsPath: join(cacheDir, baseName),
  };
}

/** apt-get installs missing host (bookworm) packages; only tools used on the host side. */
async function ensureHostPackages(
  packages: string[],
  progress: (line: string) => void,
  logFile: string,
  force = false,
): Promise<void> {
  const missing = force ? packages : packages.filter((p) => !which(p));
  if (missing.length === 0) return;
  if (!which('apt-get'))
    throw new Error(`@emu/guest: please install ${missing.join(', ')} (no apt-get here)`);
  progress(`guest: apt-get install ${missing.join(' ')} (host)…`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { logFile, env });
  await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { logFile, env });
}

/** Runs a shell command chrooted in `root`, with /proc mounted in a private mount namespace. */
export async function runInChroot(root: string, command: string, logFile?: string): Promise<string> {
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    LC_ALL: 'C.UTF-8',
    HOME: '/root',
    DEBIAN_FRONTEND: 'noninteractive',
    // keeps the kernel's postinst hooks from generating an initrd we never use
    INITRD: 'No',
  };
  return run(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      'mount -t proc proc "$1/proc" && exec chroot "$1" /bin/sh -c "$2"',
      'sh',
      root,
      command,
    ],
    { logFile, env },
  );
}

async function buildRootfs(
  cacheDir: string,
  mirror: string,
  progress: (line: string) => void,
  logFile: string,
): Promise<void> {
  const rootfs = join(cacheDir, 'rootfs');
  const tmp = join(cacheDir, 'rootfs.new');
  // Nothing is ever mounted under the cache outside a private mount namespace, so rm is safe.
  await rm(tmp, { recursive: true, force: true });
  progress('guest: debootstrap trixie (first run, a few minutes)…');
  await run(
    'unshare',
    ['--mount', '--propagation', 'private', 'debootstrap', '--variant=minbase', 'trixie', tmp, mirror],
    { logFile },
  );

  // no docs, man pages or translations for the packages installed from here on
  await mkdir(join(tmp, 'etc/dpkg/dpkg.cfg.d'), { recursive: true });
  await writeFile(
    join(tmp, 'etc/dpkg/dpkg.cfg.d/01-emu-guest-nodoc'),
    [
      'path-exclude=/usr/share/doc/*',
      'path-exclude=/usr/share/man/*',
      'path-exclude=/usr/share/info/*',
      'path-exclude=/usr/share/locale/*',
      'path-include=/usr/share/locale/locale.alias',
      'path-exclude=/usr/share/lintian/*',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(tmp, 'etc/apt/sources.list'),
    `deb ${mirror} trixie main\ndeb ${mirror} trixie-updates main\ndeb ${mirror} trixie-backports main\n`,
  );
  // `-t trixie-backports` below prefers backports for QEMU and its dependencies; the kernel stays trixie's.
  await mkdir(join(tmp, 'etc/apt/preferences.d'), { recursive: true });
  await writeFile(
    join(tmp, 'etc/apt/preferences.d/emu-guest'),
    [
      'Package: linux-image-* linux-modules-* linux-headers-* linux-kbuild-* linux-base',
      'Pin: release n=trixie-backports',
      'Pin-Priority: -1',
      '',
    ].join('\n'),
  );
  await writeFile(join(tmp, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });

  progress('guest: apt-get install qemu-system-x86 (trixie-backports), linux-image-amd64, busybox-static…');
  await runInChroot(
    tmp,
    'apt-get update -qq && apt-get install -y -q --no-install-recommends -t trixie-backports ' +
      'qemu-system-x86 linux-image-amd64 busybox-static',
    logFile,
  );
  progress('guest: trimming the rootfs (apt caches, docs, locales)…');
  await runInChroot(
    tmp,
    'apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/* ' +
      '/boot/initrd.img* /initrd.img* /var/log/*.log /var/cache/debconf/*-old && ' +
      'find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +',
    logFile,
  );
  await run('chroot', [tmp, '/usr/bin/qemu-system-x86_64', '--version'], { logFile });

  if (existsSync(rootfs)) {
    const old = join(cacheDir, 'rootfs.old');
    await rm(old, { recursive: true, force: true });
    await rename(rootfs, old);
    await rm(old, { recursive: true, force: true });
  }
  await rename(tmp, rootfs);
}

async function findKernel(rootfs: string): Promise<{ release: string; image: string }> {
  const releases = (await readdir(join(rootfs, 'lib/modules')))
    .filter((r) => existsSync(join(rootfs, 'boot', `vmlinuz-${r}`)))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const release = releases.at(-1);
  if (!release) throw new Error(`no kernel found in ${rootfs}/boot`);
  return { release, image: `/boot/vmlinuz-${release}` };
}

export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

async function dpkgVersions(rootfs: string, packages: string[]): Promise<Record<string, string>> {
  const out = await run('chroot', [rootfs, '/usr/bin/dpkg-query', '-W', ...packages]).catch(
    (e: { output?: string }) => e.output ?? '',
  );
  const versions: Record<string, string> = {};
  for (const line of out.split('\n')) {
    // default format: `package[:arch]<TAB>version`
    const [p, v] = line.trim().split(/\s+/);
    if (p && v) versions[p.replace(/:.*$/, '')] = v;
  }
  return versions;
}

const moduleIndexCache = new Map<string, ModuleIndex>();

export async function loadModuleIndex(rootfs: string, release: string): Promise<ModuleIndex> {
  const dir = join(rootfs, 'lib/modules', release);
  const key = dir;
  const cached = moduleIndexCache.get(key);
  if (cached) return cached;
  const dep = await readFile(join(dir, 'modules.dep'), 'utf8');
  const builtin = await readFile(join(dir, 'modules.builtin'), 'utf8').catch(() => '');
  const index = parseModulesDep(dep, builtin);
  moduleIndexCache.set(key, index);
  return index;
}

async function decompress(src: string, busybox: string): Promise<Buffer> {
  if (src.endsWith('.xz')) return captureBuffer(busybox, ['xz', '-dc', src]);
  if (src.endsWith('.zst')) return captureBuffer('zstd', ['-dc', src]);
  if (src.endsWith('.gz')) return gunzipSync(await readFile(src));
  return readFile(src);
}

/**
 * Makes sure every module of `resolution` is decompressed under CACHE/modules/<release>/ and returns
 * the files. Atomic writes, so concurrent boots may share the directory.
 */
export async function prepareModuleFiles(
  cacheDir: string,
  rootfs: string,
  release: string,
  resolution: ModuleResolution,
  busybox = join(cacheDir, 'bin', 'busybox'),
): Promise<ModuleFile[]> {
  const files: ModuleFile[] = [];
  for (const m of resolution.modules) {
    const dest = join(cacheDir, 'modules', release, uncompressedPath(m.path));
    let data: Buffer;
    if (existsSync(dest)) {
      data = await readFile(dest);
    } else {
      const src = join(rootfs, 'lib/modules', release, m.path);
      await stat(src);
      data = await decompress(src, busybox);
      await writeFileAtomic(dest, data);
    }
    files.push({ module: m, data });
  }
  return files;
}

/** The cached modules archive for a resolution (built on first use). */
export async function modulesInitramfs(
  env: GuestEnvironment,
  resolution: ModuleResolution,
): Promise<string | null> {
  if (resolution.modules.length === 0) return null;
  const release = env.manifest.kernel.release;
  const key = sha256(`${release}\n${resolution.modules.map((m) => m.path).join('\n')}`).slice(0, 16);
  const path = join(env.cacheDir, 'initramfs', `modules-${key}.cpio`);
  if (existsSync(path)) return path;
  const files = await prepareModuleFiles(env.cacheDir, env.rootfs, release, resolution);
  const index = await loadModuleIndex(env.rootfs, release);
  await writeFileAtomic(path, buildModulesInitramfs(release, files, index.deps));
  return path;
}
