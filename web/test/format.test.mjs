import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dayKey, dayLabel, hue, initials, listStamp, preview, timeOfDay, typingText } from '../static/format.js';

test('dayKey follows the reader’s time zone', () => {
  const t = '2026-11-26T23:30:00.000Z';
  assert.equal(dayKey(t, 'UTC'), '2026-11-26');
  assert.equal(dayKey(t, 'Europe/Berlin'), '2026-11-27');
  assert.equal(dayKey(t, 'America/New_York'), '2026-11-26');
  assert.equal(dayKey('2026-11-27T03:00:00.000Z', 'America/Los_Angeles'), '2026-11-26');
  assert.equal(dayKey('garbage', 'UTC'), '');
});

test('timeOfDay is in the reader’s zone', () => {
  assert.equal(timeOfDay('2026-11-26T19:10:32.123Z', { locale: 'en-GB', timeZone: 'UTC' }), '19:10');
  assert.match(timeOfDay('2026-11-26T19:10:32.123Z', { locale: 'en-GB', timeZone: 'Asia/Tokyo' }), /^0?4:10$/);
  assert.match(timeOfDay('2026-11-26T19:10:32.123Z', { locale: 'en-US', timeZone: 'UTC' }), /^7:10\sPM$/);
});

test('dayLabel says Today, Yesterday, a weekday, or a date', () => {
  const now = new Date('2026-11-26T12:00:00.000Z');
  const o = { now, locale: 'en-US', timeZone: 'UTC' };
  assert.equal(dayLabel('2026-11-26T01:00:00.000Z', o), 'Today');
  assert.equal(dayLabel('2026-11-25T23:59:00.000Z', o), 'Yesterday');
  assert.equal(dayLabel('2026-11-23T10:00:00.000Z', o), 'Monday');
  assert.equal(dayLabel('2026-10-02T10:00:00.000Z', o), 'Fri, Oct 2');
  assert.equal(dayLabel('2025-10-02T10:00:00.000Z', o), 'Oct 2, 2025');
  // Across midnight in the reader's zone, the same instant is "Today" in one zone and "Yesterday" in another.
  const late = { now: new Date('2026-11-26T23:30:00.000Z'), locale: 'en-US' };
  assert.equal(dayLabel('2026-11-26T22:00:00.000Z', { ...late, timeZone: 'UTC' }), 'Today');
  assert.equal(dayLabel('2026-11-26T22:00:00.000Z', { ...late, timeZone: 'Europe/Berlin' }), 'Yesterday');
});

test('dayLabel handles year boundaries', () => {
  const now = new Date('2027-01-01T08:00:00.000Z');
  assert.equal(dayLabel('2026-12-31T20:00:00.000Z', { now, locale: 'en-US', timeZone: 'UTC' }), 'Yesterday');
});

test('listStamp is short', () => {
  const now = new Date('2026-11-26T12:00:00.000Z');
  const o = { now, locale: 'en-GB', timeZone: 'UTC' };
  assert.match(listStamp('2026-11-26T09:05:00.000Z', o), /^0?9:05$/);
  assert.equal(listStamp('2026-11-25T09:05:00.000Z', o), 'Yesterday');
  assert.equal(listStamp('2026-11-22T09:05:00.000Z', o), 'Sun');
  assert.equal(listStamp('2026-03-01T09:05:00.000Z', o), '1 Mar');
});

test('initials, hue, preview, typingText', () => {
  assert.equal(initials('Anna Karenina'), 'AK');
  assert.equal(initials('billy'), 'B');
  assert.equal(initials('john.doe'), 'JD');
  assert.equal(initials('😀 smile'), '😀S');
  assert.equal(initials(''), '?');
  assert.equal(hue('abc'), hue('abc'));
  for (let i = 0; i < 2000; i++) {
    const x = hue(String(i * 7919));
    assert.ok(x >= 0 && x < 360 && !(x >= 45 && x < 100), `hue ${x}`);
  }
  assert.equal(preview('  a\n\nb  '), 'a b');
  assert.equal(preview('x'.repeat(100), 10), 'xxxxxxxxx…');
  assert.equal(typingText([]), '');
  assert.equal(typingText(['Anna']), 'Anna is typing…');
  assert.equal(typingText(['Anna', 'Billy']), 'Anna and Billy are typing…');
  assert.equal(typingText(['A', 'B', 'C']), '3 people are typing…');
});
