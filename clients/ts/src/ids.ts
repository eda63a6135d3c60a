// Message IDs are unsigned 64-bit decimals carried as strings. They are
// compared without converting them to numbers, which would lose precision
// beyond 2^53: the longer string is the larger number, equal lengths compare
// lexically.

import type { ID } from './protocol.js';

/** Strips leading zeros so that "007" and "7" compare equal. */
function normId(id: ID): string {
  const s = String(id);
  let i = 0;
  while (i < s.length - 1 && s[i] === '0') i++;
  return i ? s.slice(i) : s;
}

/** Compares two IDs as unsigned 64-bit decimals: -1, 0 or 1. */
export function compareIds(a: ID, b: ID): number {
  const x = normId(a);
  const y = normId(b);
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The larger of two IDs, where null or undefined is smaller than any ID. */
export function maxId(a: ID | null | undefined, b: ID | null | undefined): ID | null {
  if (a == null) return b ?? null;
  if (b == null) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/** Whether s looks like an ID the server could have issued. */
export function isId(s: unknown): s is ID {
  return typeof s === 'string' && /^[0-9]{1,20}$/.test(s);
}

/**
 * Merges items into a list sorted by ID, dropping duplicates (the later copy
 * of an ID replaces the earlier one, unless `choose` picks the held one).
 * Returns a new array and how many IDs were new. Items without a valid ID
 * are ignored.
 */
export function mergeMessages<T extends { id: ID }>(
  list: T[],
  incoming: readonly (T | null | undefined)[] | null | undefined,
  choose: (held: T, incoming: T) => T = (_held, m) => m,
): { list: T[]; added: number } {
  if (!incoming || incoming.length === 0) return { list, added: 0 };
  const out = list.slice();
  let added = 0;
  for (const m of incoming) {
    if (!m || !isId(m.id)) continue;
    // Binary search: the common cases (appending the newest, prepending an
    // older page) stay cheap for long histories.
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareIds(out[mid].id, m.id) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo < out.length && compareIds(out[lo].id, m.id) === 0) {
      out[lo] = choose(out[lo], m);
    } else {
      out.splice(lo, 0, m);
      added++;
    }
  }
  return { list: out, added };
}
