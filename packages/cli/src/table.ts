/** Aligned, borderless text tables for `emu ctl` and `emu stats` (cli-table3 does the measuring). */
import Table from 'cli-table3';

const NO_BORDER = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: '',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

/** `head` and `rows` as columns; numbers are right-aligned. Lines end without trailing blanks. */
export function table(head: string[], rows: Array<Array<string | number>>): string {
  const t = new Table({
    head,
    chars: NO_BORDER,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true },
    colAligns: head.map((_, i) =>
      rows.length > 0 && rows.every((r) => typeof r[i] === 'number') ? 'right' : 'left',
    ),
  });
  for (const r of rows) t.push(r.map(String));
  return `${t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')}\n`;
}
