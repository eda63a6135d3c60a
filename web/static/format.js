// Dates and times in the reader's time zone, and small text helpers. No DOM,
// so Node's test runner can check them with a fixed zone.

const cache = new Map();

function fmt(locale, timeZone, options) {
  const key = `${locale}|${timeZone}|${JSON.stringify(options)}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, { ...options, timeZone });
    cache.set(key, f);
  }
  return f;
}

/** The calendar day of an instant in a time zone, as "YYYY-MM-DD". */
export function dayKey(date, timeZone) {
  const d = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(d.getTime())) return '';
  const parts = fmt('en-US', timeZone, { year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(d);
  const get = (t) => parts.find((p) => p.type === t)?.value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/** The day before a "YYYY-MM-DD" key. */
function previousDay(key) {
  const [y, m, d] = key.split('-').map(Number);
  const t = new Date(Date.UTC(y, m - 1, d) - 86400000);
  return t.toISOString().slice(0, 10);
}

/** A message's time of day, e.g. "19:10" or "7:10 PM" as the locale writes it. */
export function timeOfDay(date, { locale, timeZone } = {}) {
  const d = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(d.getTime())) return '';
  return fmt(locale, timeZone, { hour: 'numeric', minute: '2-digit' }).format(d);
}

/** The label of a day separator: "Today", "Yesterday", a weekday this week, or a date. */
export function dayLabel(date, { now = new Date(), locale, timeZone } = {}) {
  const d = date instanceof Date ? date : new Date(date);
  const key = dayKey(d, timeZone);
  const today = dayKey(now, timeZone);
  if (key === today) return 'Today';
  if (key === previousDay(today)) return 'Yesterday';
  const ageDays = (now.getTime() - d.getTime()) / 86400000;
  if (ageDays >= 0 && ageDays < 6) return fmt(locale, timeZone, { weekday: 'long' }).format(d);
  const sameYear = key.slice(0, 4) === today.slice(0, 4);
  const opts = sameYear ? { weekday: 'short', month: 'short', day: 'numeric' } : { year: 'numeric', month: 'short', day: 'numeric' };
  return fmt(locale, timeZone, opts).format(d);
}

/** A short stamp for the conversation list: a time today, else a weekday or a date. */
export function listStamp(date, { now = new Date(), locale, timeZone } = {}) {
  const d = date instanceof Date ? date : new Date(date);
  if (Number.isNaN(d.getTime())) return '';
  const key = dayKey(d, timeZone);
  const today = dayKey(now, timeZone);
  if (key === today) return timeOfDay(d, { locale, timeZone });
  if (key === previousDay(today)) return 'Yesterday';
  const ageDays = (now.getTime() - d.getTime()) / 86400000;
  if (ageDays >= 0 && ageDays < 6) return fmt(locale, timeZone, { weekday: 'short' }).format(d);
  return fmt(locale, timeZone, { month: 'short', day: 'numeric' }).format(d);
}

/** Up to two initials for an avatar. */
export function initials(name) {
  const words = String(name || '?').trim().split(/[\s._-]+/u).filter(Boolean);
  if (!words.length) return '?';
  const first = [...words[0]][0] || '?';
  const second = words.length > 1 ? [...words[words.length - 1]][0] : '';
  return (first + (second || '')).toUpperCase();
}

/**
 * A stable hue for a user or conversation ID, for avatar colours. Yellows
 * and yellow-greens (45–100) are skipped: white initials on them are hard
 * to read.
 */
export function hue(id) {
  let h = 0;
  const s = String(id || '');
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  const x = h % 305;
  return x < 45 ? x : x + 55;
}

/** One line of a message body for the conversation list. */
export function preview(body, max = 80) {
  const s = String(body || '').replace(/\s+/gu, ' ').trim();
  const chars = [...s];
  return chars.length > max ? chars.slice(0, max - 1).join('') + '…' : s;
}

/** "Anna is typing…", "Anna and Billy are typing…", "3 people are typing…". */
export function typingText(names) {
  if (!names.length) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}
