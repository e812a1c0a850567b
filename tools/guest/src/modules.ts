/**
 * Kernel-module resolution from depmod's `modules.dep` (and `modules.builtin`), without kmod.
 */

const COMPRESSED_SUFFIX = /\.(xz|zst|gz)$/;

/** `kernel/drivers/vfio/pci/vfio-pci.ko.xz` → `vfio_pci` (the name lsmod shows). */
export function moduleNameFromPath(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return normalizeModuleName(base.replace(COMPRESSED_SUFFIX, '').replace(/\.ko$/, ''));
}

/** Module names treat `-` and `_` alike; the kernel reports `_`. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** `kernel/x/y.ko.xz` → `kernel/x/y.ko` */
export function uncompressedPath(path: string): string {
  return path.replace(COMPRESSED_SUFFIX, '');
}

export interface ModuleIndex {
  /** module name (normalized) → path relative to /lib/modules/<release> as listed in modules.dep */
  byName: Map<string, string>;
  /** path → dependency paths */
  deps: Map<string, string[]>;
  /** names of modules built into the kernel image */
  builtin: Set<string>;
}

export function parseModulesDep(depText: string, builtinText = ''): ModuleIndex {
  const byName = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const raw of depText.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const rest = line.slice(colon + 1).trim();
    deps.set(path, rest ? rest.split(/\s+/) : []);
    byName.set(moduleNameFromPath(path), path);
  }
  const builtin = new Set<string>();
  for (const raw of builtinText.split('\n')) {
    const line = raw.trim();
    if (line) builtin.add(moduleNameFromPath(line));
  }
  return { byName, deps, builtin };
}

export interface ModuleSpec {
  name: string;
  params: string[];
}

/** `'vfio_iommu_type1 allow_unsafe_interrupts=1'` → `{ name: 'vfio_iommu_type1', params: [...] }` */
export function parseModuleSpec(spec: string): ModuleSpec {
  const [name, ...params] = spec.trim().split(/\s+/);
  if (!name) throw new Error(`empty module spec: ${JSON.stringify(spec)}`);
  for (const p of params) {
    if (!/^[A-Za-z0-9_.-]+(=\S*)?$/.test(p)) throw new Error(`bad module parameter ${JSON.stringify(p)}`);
  }
  return { name: normalizeModuleName(name.replace(/\.ko(\.(xz|zst|gz))?$/, '')), params };
}

export interface ResolvedModule {
  name: string;
  /** path relative to /lib/modules/<release>, as in modules.dep (possibly compressed) */
  path: string;
  /** parameters given with the request; dependencies that weren't requested get none */
  params: string[];
  /** true if the module was asked for, false if it is only a dependency */
  requested: boolean;
}

export interface ModuleResolution {
  /** in load order: every module comes after all of its dependencies */
  modules: ResolvedModule[];
  /** requested names that are built into the kernel (nothing to load) */
  builtin: string[];
}

/**
 * Resolves requested modules plus their dependencies into a load order. Unknown names throw.
 */
export function resolveModules(index: ModuleIndex, specs: readonly string[]): ModuleResolution {
  const parsed = specs.map(parseModuleSpec);
  const paramsByName = new Map<string, string[]>();
  for (const s of parsed) paramsByName.set(s.name, [...(paramsByName.get(s.name) ?? []), ...s.params]);
  const requested = new Set(parsed.map((s) => s.name));
  const order: ResolvedModule[] = [];
  const builtin: string[] = [];
  const done = new Set<string>();
  const visiting = new Set<string>();

  const visit = (path: string, chain: string[]) => {
    if (done.has(path)) return;
    if (visiting.has(path)) throw new Error(`module dependency cycle: ${[...chain, path].join(' -> ')}`);
    visiting.add(path);
    const deps = index.deps.get(path);
    if (!deps) throw new Error(`module ${path} is not in modules.dep`);
    for (const d of deps) visit(d, [...chain, path]);
    visiting.delete(path);
    done.add(path);
    const name = moduleNameFromPath(path);
    order.push({ name, path, params: paramsByName.get(name) ?? [], requested: requested.has(name) });
  };

  for (const s of parsed) {
    const path = index.byName.get(s.name);
    if (path) {
      visit(path, []);
    } else if (index.builtin.has(s.name)) {
      if (!builtin.includes(s.name)) builtin.push(s.name);
    } else {
      throw new Error(
        `unknown kernel module ${JSON.stringify(s.name)} (not in modules.dep or modules.builtin)`,
      );
    }
  }
  return { modules: order, builtin };
}
