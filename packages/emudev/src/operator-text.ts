/**
 * What a name, path or value that an operator or local caller gives emu may be: the one rule for every
 * such string, wherever it comes from (the command line, a config file, the control socket, the API).
 * Bounded, so every message and log line that quotes one stays short; free of control characters
 * (newlines, escapes, NUL), so none can forge a log line or hide in a file name; well-formed Unicode,
 * so the file it names is the one the text says. Callers wrap the reason in their own error, naming
 * the key.
 */

/** The longest each kind may be, in UTF-8 bytes. */
export const TEXT_LIMITS = {
  /** A device name: DPDK's RTE_DEV_NAME_MAX_LEN (64) with the NUL. */
  name: 63,
  /** A devargs key or an attribute name. */
  key: 63,
  /** A UNIX socket's path: sun_path (108 bytes) with the NUL. */
  socketPath: 107,
  /** A file path: PATH_MAX (4096) with the NUL. */
  path: 4095,
  /** Any other value. */
  value: 4095,
} as const;

export type TextKind = keyof typeof TEXT_LIMITS;

/** C0 and C1 controls and DEL (Cc), line and paragraph separators, and lone surrogates (Cs). */
const FORBIDDEN = /[\p{Cc}\p{Cs}\u2028\u2029]/u;

/** Why `text` cannot be a `kind`, or undefined when it can. */
export function textProblem(text: string, kind: TextKind): string | undefined {
  const limit = TEXT_LIMITS[kind];
  const bytes = Buffer.byteLength(text);
  if (bytes > limit) return `is ${bytes} bytes long; at most ${limit}`;
  const bad = FORBIDDEN.exec(text);
  if (!bad) return undefined;
  const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
  return /\p{Cs}/u.test(bad[0])
    ? `has a lone surrogate (U+${code}) at character ${bad.index}: not well-formed Unicode`
    : `has a control character (U+${code}) at character ${bad.index}`;
}

/** A string as a message shows it: quoted, every control character escaped, cut short. */
export function showText(text: string, max = 40): string {
  const chars = [...text];
  const cut = chars.length > max ? `${chars.slice(0, max).join('')}…` : text;
  // JSON escapes C0 controls and lone surrogates; DEL, C1 and the separators are escaped here.
  return JSON.stringify(cut).replace(
    /[\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A value as a message shows it: its JSON, cut short. */
export function showValue(value: unknown, max = 80): string {
  let json: string;
  try {
    json = JSON.stringify(value) ?? String(value);
  } catch {
    json = String(value);
  }
  return json.length > max ? `${json.slice(0, max)}…` : json;
}

/**
 * Why a value (an attribute's: a string, or strings inside arrays and objects) cannot be taken, naming
 * where in it the string is (`path`, `[2].name`), or undefined when every string in it is a fine
 * `kind`. A loop over a stack, not recursion: a value nested deeper than the call stack is walked too.
 */
export function valueTextProblem(value: unknown, kind: TextKind): string | undefined {
  interface Node {
    value: unknown;
    step: string;
    parent?: Node;
  }
  const todo: Node[] = [{ value, step: '' }];
  for (let node = todo.pop(); node !== undefined; node = todo.pop()) {
    const v = node.value;
    if (typeof v === 'string') {
      const why = textProblem(v, kind);
      if (why === undefined) continue;
      let where = '';
      for (let n: Node | undefined = node; n; n = n.parent) where = n.step + where;
      return `${where === '' ? '' : `${where.replace(/^\./, '')}: `}${showText(v)} ${why}`;
    }
    // Children pushed last first, so that they come off the stack in order.
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) todo.push({ value: v[i], step: `[${i}]`, parent: node });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (const [k] of entries) {
        const why = textProblem(k, 'key');
        if (why !== undefined) return `the key ${showText(k)} ${why}`;
      }
      for (let i = entries.length - 1; i >= 0; i--) {
        todo.push({ value: entries[i][1], step: `.${entries[i][0]}`, parent: node });
      }
    }
  }
  return undefined;
}
