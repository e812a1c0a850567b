/** Relative, '/'-separated paths of the files the native source hash covers. */
export function sourceFiles(root?: string): string[];
/** sha256 (hex) over binding.gyp and src/**, as baked into the .node's `sourceHash`. */
export function computeSourceHash(root?: string): string;
