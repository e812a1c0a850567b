import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { bootGuest } from './boot.js';
import { ensureGuestEnvironment } from './setup.js';

const USAGE = `usage:
  emu-guest setup [--cache DIR] [--rebuild]
      build the guest cache (first run: a few minutes; later: a stamp check); prints the manifest
  emu-guest boot [--socket PATH]... [--module NAME]... (--script FILE|- | --eval 'SH') [options]
      boot a guest with one vfio-user-pci device per --socket, run the script, print its output;
      exits with the script's exit status (124 on timeout, 125 if the guest never finished)
    --module NAME        kernel module (+ dependencies) to load, e.g. vfio-pci; 'name param=value' works
    --file GUEST=HOST    copy HOST into the guest at GUEST
    --iommu              emulated intel-iommu + intel_iommu=on (needed for guest VFIO, see README)
    --kernel-args ARGS   appended to the kernel command line
    --memory MIB         guest RAM (default 512)
    --cpus N             guest CPUs (default 1)
    --timeout SECONDS    default 120
    --qemu-arg ARG       extra QEMU argument (repeatable)
    --console            copy the serial console to stderr as it arrives
    --json               print the whole result as JSON instead of the output
  emu-guest info
      print the manifest of a ready cache
  Cache: --cache DIR, or $EMU_GUEST_CACHE (default /var/cache/emu-guest).`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 1;
  }
  if (cmd === 'setup' || cmd === 'info') {
    const { values } = parseArgs({
      args: rest,
      options: { cache: { type: 'string' }, rebuild: { type: 'boolean' } },
    });
    const env = await ensureGuestEnvironment({ cacheDir: values.cache, rebuild: values.rebuild });
    process.stdout.write(`${JSON.stringify(env.manifest, null, 2)}\n`);
    return 0;
  }
  if (cmd === 'boot') {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        socket: { type: 'string', multiple: true },
        module: { type: 'string', multiple: true },
        script: { type: 'string', short: 's' },
        eval: { type: 'string', short: 'e' },
        file: { type: 'string', multiple: true },
        iommu: { type: 'boolean' },
        'kernel-args': { type: 'string' },
        memory: { type: 'string' },
        cpus: { type: 'string' },
        timeout: { type: 'string' },
        'qemu-arg': { type: 'string', multiple: true },
        console: { type: 'boolean' },
        json: { type: 'boolean' },
        cache: { type: 'string' },
      },
    });
    let script: string;
    if (values.eval !== undefined) script = values.eval;
    else {
      const src = values.script ?? positionals[0];
      if (!src) throw new Error('boot: give --script FILE (or - for stdin) or --eval SCRIPT');
      script = readFileSync(src === '-' ? 0 : src, 'utf8');
    }
    const files: Record<string, Buffer> = {};
    for (const f of values.file ?? []) {
      const eq = f.indexOf('=');
      if (eq <= 0) throw new Error(`--file wants GUEST_PATH=HOST_PATH, got ${f}`);
      files[f.slice(0, eq)] = readFileSync(f.slice(eq + 1));
    }
    const num = (s: string | undefined, what: string) => {
      if (s === undefined) return undefined;
      const n = Number(s);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`bad ${what}: ${s}`);
      return n;
    };
    const timeoutS = num(values.timeout, '--timeout');
    const result = await bootGuest({
      sockets: values.socket ?? [],
      modules: values.module ?? [],
      script,
      files,
      iommu: values.iommu,
      kernelArgs: values['kernel-args'],
      memoryMiB: num(values.memory, '--memory'),
      cpus: num(values.cpus, '--cpus'),
      timeoutMs: timeoutS === undefined ? undefined : timeoutS * 1000,
      extraQemuArgs: values['qemu-arg'] ?? [],
      cacheDir: values.cache,
      onConsole: values.console ? (l) => process.stderr.write(`console| ${l}\n`) : undefined,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write(result.output);
    if (result.exitCode === null) {
      const why = result.timedOut
        ? `timed out after ${result.durationMs} ms`
        : `QEMU ended (status ${result.qemuExitStatus ?? result.qemuSignal}) before the script finished`;
      process.stderr.write(`emu-guest: ${why}\n`);
      if (!values.console && !values.json) {
        const tail = result.console.split('\n').slice(-30).join('\n');
        process.stderr.write(`--- console (last lines) ---\n${tail}\n`);
      }
      if (result.qemuStderr) process.stderr.write(`--- qemu stderr ---\n${result.qemuStderr}`);
      return result.timedOut ? 124 : 125;
    }
    process.stderr.write(`emu-guest: script exited ${result.exitCode} (${result.durationMs} ms)\n`);
    return result.exitCode;
  }
  process.stderr.write(`unknown command ${cmd}\n${USAGE}\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`emu-guest: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
