// The words the message UI (static/messages.js) puts on reactions, quotes
// and errors: what a screen reader says and what a person reads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DELETED_TEXT, REACTIONS, changeErrorText, quoteText, reactionLabel } from '../static/messages.js';
import { validEmoji } from '../static/state.js';

test('a reaction chip says the emoji, how many, and whether I am one of them', () => {
  assert.equal(reactionLabel({ emoji: '👍', count: 1 }), '👍 1 person. Press to react with 👍');
  assert.equal(reactionLabel({ emoji: '👍', count: 3, me: true }), '👍 3 people, including you. Press to take yours back');
});

test('a quote shows the original shortened to one line, or that it was deleted', () => {
  assert.equal(quoteText({ id: '1', sender: '2', body: 'line one\nline two' }), 'line one line two');
  assert.equal(quoteText({ id: '1', sender: '2', body: '', deleted: true }), DELETED_TEXT);
  const long = quoteText({ id: '1', sender: '2', body: 'x'.repeat(500) });
  assert.equal([...long].length, 120);
  assert.ok(long.endsWith('…'));
});

test('every emoji of the picker is one the server accepts, with a name', () => {
  for (const [emoji, name] of REACTIONS) {
    assert.ok(validEmoji(emoji), emoji);
    assert.match(name, /^[a-z ]+$/);
  }
});

test('refusals read as sentences, the edit window’s included', () => {
  assert.match(changeErrorText('edit', 'forbidden'), /no longer be edited/);
  assert.match(changeErrorText('react', 'not_found'), /deleted/);
  assert.match(changeErrorText('delete', 'disconnected'), /Offline/);
  assert.ok(changeErrorText('edit', 'something new').length > 0);
});
