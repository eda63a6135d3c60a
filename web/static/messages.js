// Messages that change, in the browser: editing (the up arrow in an empty
// composer edits my last message; Enter saves, Escape cancels), deleting
// after a confirmation, replying with a quote that leads back to the
// original, and reactions with a small picker. The state and the protocol
// are the client library's (edit, delete, react, send with reply_to); this
// module draws them and handles the keys. User data reaches the DOM as text
// only; every control has a name a screen reader reads.
//
// Keyboard: the message log holds one tab stop for the messages (a roving
// tabindex: the last message, or the one last focused); Up and Down move
// between messages, Home and End to the first and last, and Tab goes on to
// that message's buttons.

import { h } from './dom.js';
import { displayName, quoteOf } from './state.js';
import { preview } from './format.js';

/** The picker's reactions: [emoji, the name a screen reader says]. */
export const REACTIONS = [
  ['👍', 'thumbs up'],
  ['❤️', 'heart'],
  ['😂', 'laughing'],
  ['😮', 'surprised'],
  ['😢', 'sad'],
  ['🎉', 'party'],
  ['🙏', 'thank you'],
  ['👀', 'eyes'],
];

export const DELETED_TEXT = 'Message deleted';

/** What a reaction chip says to a screen reader. */
export function reactionLabel(r) {
  const n = r.count;
  const who = n === 1 ? '1 person' : `${n} people`;
  if (r.me) return `${r.emoji} ${who}, including you. Press to take yours back`;
  return `${r.emoji} ${who}. Press to react with ${r.emoji}`;
}

/** The text of a quote: the original's body, shortened, or that it was deleted. */
export function quoteText(q) {
  if (!q) return '';
  return q.deleted ? DELETED_TEXT : preview(q.body, 120);
}

/** What a change request's error means to the person who made it. */
export function changeErrorText(kind, code) {
  switch (code) {
    case 'forbidden':
      return kind === 'edit' ? 'This message can no longer be edited.' : 'You can only change your own messages.';
    case 'not_found':
      return 'That message was deleted.';
    case 'invalid_message':
      return kind === 'react' ? 'This message has as many different reactions as it can take.' : 'Messages are 1–4,096 characters.';
    case 'disconnected':
    case 'timeout':
      return 'Offline: that did not go through. Try again when you are back online.';
    default:
      return 'That did not work. Try again in a moment.';
  }
}

/**
 * The message UI. env: {els, app: () => app, showNotice(text), autoGrow(),
 * loadOlder(): Promise, hasOlder(convId): boolean}.
 */
export function createMessageUI(env) {
  const { els } = env;
  // Composer mode: null, or {kind: 'edit'|'reply', conv, id, draft}.
  let mode = null;
  // The message ID holding the log's tab stop (roving tabindex).
  let active = null;
  let pickerFor = null;
  let deleting = null;
  // The control in the log that had focus: a re-render that replaces its
  // message (a reaction, an edit) must not drop a keyboard user's focus.
  let focused = null;

  const context = h(
    'div',
    { id: 'compose-context', class: 'compose-context', hidden: true },
    h('span', { class: 'cc-icon', 'aria-hidden': 'true' }),
    h('div', { id: 'compose-context-text', class: 'cc-text' }, h('strong', { class: 'cc-title' }), h('span', { class: 'cc-quote' })),
    h('button', { type: 'button', class: 'icon-btn cc-cancel', 'aria-label': 'Cancel' }, icon('M18 6L6 18M6 6l12 12')),
  );
  els.composer.before(context);
  const ccTitle = context.querySelector('.cc-title');
  const ccQuote = context.querySelector('.cc-quote');
  const ccCancel = context.querySelector('.cc-cancel');
  ccCancel.addEventListener('click', () => {
    cancel();
    els.input.focus();
  });

  const picker = h('div', { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction', hidden: true });
  for (const [emoji, name] of REACTIONS) {
    picker.append(h('button', { type: 'button', class: 'pick', 'aria-label': `React with ${name}`, dataset: { emoji }, text: emoji }));
  }
  els.conversation.append(picker);

  const dialog = h(
    'dialog',
    { id: 'delete-dialog', class: 'dialog', 'aria-labelledby': 'delete-dialog-title', 'aria-describedby': 'delete-dialog-text' },
    h(
      'form',
      { method: 'dialog' },
      h('h2', { id: 'delete-dialog-title', text: 'Delete this message?' }),
      h('p', { id: 'delete-dialog-text', class: 'muted', text: 'It will be deleted for everyone in the conversation.' }),
      h('p', { class: 'delete-preview' }),
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'submit', value: 'cancel', class: 'btn secondary', autofocus: true, text: 'Cancel' }),
        h('button', { type: 'submit', value: 'delete', class: 'btn danger', text: 'Delete' }),
      ),
    ),
  );
  document.body.append(dialog);
  dialog.addEventListener('close', onDialogClose);

  els.messages.addEventListener('click', onClick);
  els.messages.addEventListener('keydown', onLogKey);
  els.messages.addEventListener('focusin', (ev) => {
    focused = ev.target;
    const li = ev.target.closest('li.msg[data-id]');
    if (li && li.dataset.id && li.dataset.id !== active) {
      active = li.dataset.id;
      roving();
    }
  });
  els.input.addEventListener('keydown', onComposerKey);
  picker.addEventListener('click', onPick);
  picker.addEventListener('keydown', onPickerKey);
  picker.addEventListener('focusout', (ev) => {
    if (!picker.contains(ev.relatedTarget)) closePicker(false);
  });

  function app() {
    return env.app();
  }

  function icon(d) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.append(p);
    return svg;
  }

  // ------------------------------------------------------------ rendering

  /**
   * The parts of a timeline item this module draws: {sig, build}, sig for
   * the renderer's cache and build() making {quote, body, edited,
   * reactions, actions} (each an element or null) only when it changed.
   */
  function parts(it, convId) {
    const st = app().state;
    const m = it.message;
    const replyTo = m ? m.reply_to : it.entry && it.entry.reply_to;
    let q = m ? m.reply : null;
    if (!q && replyTo) {
      const orig = st.message(convId, replyTo);
      q = orig ? quoteOf(orig) : null;
    }
    const deleted = !!(m && m.deleted);
    const reactions = (m && !deleted && m.reactions) || [];
    const canAct = !!m && !deleted && it.status !== 'pending' && it.status !== 'failed';
    const sig = [deleted, m ? m.edited_at || '' : '', replyTo || '', q ? [q.sender, q.body, !!q.deleted, displayName(st.user(q.sender))] : null, reactions, canAct];
    return { sig, build: () => build(it, { m, replyTo, q, deleted, reactions, canAct }) };
  }

  function build(it, { m, replyTo, q, deleted, reactions, canAct }) {
    const st = app().state;
    const out = { quote: null, body: null, edited: null, reactions: null, actions: null };
    if (replyTo && !deleted) {
      const who = q ? displayName(st.user(q.sender)) : '';
      // Named by its content ("In reply to Anna Adams Lunch at noon?"),
      // so what a screen reader says is what is shown; the title says
      // what pressing it does.
      out.quote = h(
        'button',
        { type: 'button', class: 'quote', title: 'Show the original message', dataset: { act: 'quote', target: replyTo } },
        h('span', { class: 'visually-hidden', text: 'In reply to' }),
        h('span', { class: 'quote-sender', text: who || 'A message' }),
        h('span', { class: `quote-body${q && q.deleted ? ' is-deleted' : ''}`, text: q ? quoteText(q) : 'Original message' }),
      );
    }
    if (deleted) out.body = h('p', { class: 'tombstone', text: DELETED_TEXT });
    if (m && m.edited_at && !deleted) {
      out.edited = h('span', { class: 'edited', title: `Edited ${new Date(m.edited_at).toLocaleString()}`, text: 'edited' });
    }
    if (reactions.length) {
      out.reactions = h(
        'ul',
        { class: 'reactions', 'aria-label': 'Reactions' },
        reactions.map((r) =>
          h(
            'li',
            {},
            h(
              'button',
              {
                type: 'button',
                class: `reaction${r.me ? ' me' : ''}`,
                'aria-pressed': r.me ? 'true' : 'false',
                'aria-label': reactionLabel(r),
                dataset: { act: 'toggle', emoji: r.emoji },
              },
              h('span', { class: 'r-emoji', 'aria-hidden': 'true', text: r.emoji }),
              h('span', { class: 'r-count', 'aria-hidden': 'true', text: String(r.count) }),
            ),
          ),
        ),
      );
    }
    if (canAct) {
      out.actions = h(
        'div',
        { class: 'actions', role: 'group', 'aria-label': 'Message actions' },
        h('button', { type: 'button', class: 'act', 'aria-label': 'Reply', title: 'Reply', dataset: { act: 'reply' } }, icon('M9 14L4 9l5-5M4 9h10a6 6 0 0 1 6 6v5')),
        h(
          'button',
          { type: 'button', class: 'act', 'aria-label': 'Add a reaction', title: 'React', 'aria-haspopup': 'true', 'aria-expanded': 'false', dataset: { act: 'react' } },
          icon('M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20zM8 14s1.5 2 4 2 4-2 4-2M9 9h.01M15 9h.01'),
        ),
        it.mine ? h('button', { type: 'button', class: 'act', 'aria-label': 'Edit', title: 'Edit', dataset: { act: 'edit' } }, icon('M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z')) : null,
        it.mine
          ? h('button', { type: 'button', class: 'act danger', 'aria-label': 'Delete', title: 'Delete', dataset: { act: 'delete' } }, icon('M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6'))
          : null,
      );
    }
    return out;
  }

  /** After every render: the roving tab stop, and the composer's context bar. */
  function afterRender() {
    roving();
    keepFocus();
    const a = app();
    if (mode && (mode.conv !== a.current || !a.state.message(mode.conv, mode.id) || a.state.message(mode.conv, mode.id).deleted)) {
      // The conversation changed, or the message went away under us.
      cancel();
    }
    drawContext();
  }

  /** Puts focus back on the same control when a re-render replaced its message. */
  function keepFocus() {
    const el = focused;
    if (!el || el.isConnected) return;
    focused = null;
    const ae = document.activeElement;
    if (ae && ae !== document.body) return;
    const old = el.closest ? el.closest('li.msg[data-id]') : null;
    const id = old ? old.dataset.id : el.dataset && el.dataset.id;
    if (!id) return;
    const li = els.messages.querySelector(`li.msg[data-id="${CSS.escape(id)}"]`);
    if (!li) return;
    let target = li;
    if (el !== old && el.dataset && el.dataset.act) {
      const sel = el.dataset.emoji ? `[data-act="${el.dataset.act}"][data-emoji="${CSS.escape(el.dataset.emoji)}"]` : `[data-act="${el.dataset.act}"]`;
      target = li.querySelector(sel) || li;
    }
    target.focus({ preventScroll: true });
  }

  function msgItems() {
    return [...els.messages.querySelectorAll('li.msg[data-id]')].filter((li) => li.dataset.id);
  }

  function roving() {
    const items = msgItems();
    let cur = items.find((li) => li.dataset.id === active);
    if (!cur) cur = items[items.length - 1];
    for (const li of items) {
      const on = li === cur;
      const want = on ? '0' : '-1';
      if (li.getAttribute('tabindex') !== want) li.setAttribute('tabindex', want);
      for (const b of li.querySelectorAll('button')) {
        if (on) b.removeAttribute('tabindex');
        else if (b.getAttribute('tabindex') !== '-1') b.setAttribute('tabindex', '-1');
      }
    }
  }

  function drawContext() {
    const a = app();
    if (!mode) {
      context.hidden = true;
      els.input.removeAttribute('aria-describedby');
      setSendLabel('Send');
      return;
    }
    const m = a.state.message(mode.conv, mode.id);
    context.hidden = false;
    context.dataset.kind = mode.kind;
    els.input.setAttribute('aria-describedby', 'compose-context-text');
    if (mode.kind === 'edit') {
      ccTitle.textContent = 'Editing your message';
      ccQuote.textContent = m ? preview(m.body, 120) : '';
      ccCancel.setAttribute('aria-label', 'Cancel editing');
      setSendLabel('Save');
    } else {
      ccTitle.textContent = `Replying to ${m ? displayName(a.state.user(m.sender)) : 'a message'}`;
      ccQuote.textContent = m ? quoteText(quoteOf(m)) : '';
      ccCancel.setAttribute('aria-label', 'Cancel reply');
      setSendLabel('Send');
    }
  }

  function setSendLabel(text) {
    const label = els.send.querySelector('.send-label');
    if (label && label.textContent !== text) label.textContent = text;
  }

  // ------------------------------------------------------------ composer modes

  function startEdit(convId, m) {
    closePicker(false);
    const draft = mode && mode.kind === 'edit' ? mode.draft : els.input.value;
    mode = { kind: 'edit', conv: convId, id: m.id, draft };
    els.input.value = m.body;
    env.autoGrow();
    drawContext();
    els.input.focus();
    els.input.setSelectionRange(els.input.value.length, els.input.value.length);
  }

  function startReply(convId, m) {
    closePicker(false);
    if (mode && mode.kind === 'edit') els.input.value = mode.draft;
    mode = { kind: 'reply', conv: convId, id: m.id, draft: '' };
    env.autoGrow();
    drawContext();
    els.input.focus();
  }

  /** Leaves edit or reply mode; an edit gives the composer back its draft. */
  function cancel() {
    if (!mode) return;
    if (mode.kind === 'edit') {
      els.input.value = mode.draft;
      env.autoGrow();
    }
    mode = null;
    drawContext();
  }

  /** The message a send in this conversation answers (and leaves reply mode), or null. */
  function takeReplyTo(convId) {
    if (!mode || mode.kind !== 'reply' || mode.conv !== convId) return null;
    const id = mode.id;
    mode = null;
    drawContext();
    return id;
  }

  /**
   * Handles the composer's submit in edit mode: saves the edit. Returns
   * whether it took the submit (the caller then sends nothing).
   */
  function submitEdit(convId, body) {
    if (!mode || mode.kind !== 'edit' || mode.conv !== convId) return false;
    const a = app();
    const m = a.state.message(convId, mode.id);
    const id = mode.id;
    if (m && body === m.body) {
      cancel();
      return true;
    }
    if (!body.trim()) {
      env.showNotice('A message cannot be empty: delete it instead.');
      return true;
    }
    cancel();
    env.showNotice('');
    if (a.client) {
      a.client.edit(convId, id, body).catch((e) => env.showNotice(changeErrorText('edit', e && e.code)));
    }
    return true;
  }

  function onComposerKey(ev) {
    if (ev.isComposing || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    const a = app();
    if (ev.key === 'ArrowUp' && els.input.value === '' && !(mode && mode.kind === 'edit') && a.current) {
      const m = a.state.lastEditable(a.current);
      if (m) {
        ev.preventDefault();
        startEdit(a.current, m);
      }
    } else if (ev.key === 'Escape' && mode) {
      // Escape leaves the mode; it must not also close the conversation.
      ev.preventDefault();
      ev.stopPropagation();
      cancel();
    }
  }

  // ------------------------------------------------------------ actions

  function targetOf(el) {
    const li = el.closest('li.msg[data-id]');
    const a = app();
    if (!li || !li.dataset.id || !a.current) return null;
    const m = a.state.message(a.current, li.dataset.id);
    return m ? { li, m, conv: a.current } : null;
  }

  function onClick(ev) {
    const b = ev.target.closest('[data-act]');
    if (!b || !els.messages.contains(b)) return;
    const t = targetOf(b);
    if (!t) return;
    switch (b.dataset.act) {
      case 'reply':
        startReply(t.conv, t.m);
        break;
      case 'edit':
        startEdit(t.conv, t.m);
        break;
      case 'delete':
        askDelete(t.conv, t.m);
        break;
      case 'react':
        if (pickerFor && pickerFor.id === t.m.id) closePicker(true);
        else openPicker(t.conv, t.m.id, b);
        break;
      case 'toggle':
        react(t.conv, t.m.id, b.dataset.emoji);
        break;
      case 'quote':
        showOriginal(t.conv, b.dataset.target);
        break;
      default:
        return;
    }
    ev.preventDefault();
  }

  function react(convId, msgId, emoji) {
    const a = app();
    if (!a.client) return;
    env.showNotice('');
    a.client.react(convId, msgId, emoji).catch((e) => env.showNotice(changeErrorText('react', e && e.code)));
  }

  function onLogKey(ev) {
    const li = ev.target.closest('li.msg[data-id]');
    if (!li || ev.target !== li || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const items = msgItems();
    const i = items.indexOf(li);
    let next = null;
    if (ev.key === 'ArrowUp') next = items[i - 1];
    else if (ev.key === 'ArrowDown') next = items[i + 1];
    else if (ev.key === 'Home') next = items[0];
    else if (ev.key === 'End') next = items[items.length - 1];
    else return;
    ev.preventDefault();
    if (next) focusMessage(next);
  }

  function focusMessage(li) {
    active = li.dataset.id;
    roving();
    li.focus({ preventScroll: true });
    li.scrollIntoView({ block: 'nearest' });
  }

  // ------------------------------------------------------------ picker

  function openPicker(convId, msgId, button) {
    closePicker(false);
    pickerFor = { conv: convId, id: msgId };
    button.setAttribute('aria-expanded', 'true');
    picker.hidden = false;
    const r = button.getBoundingClientRect();
    const box = els.conversation.getBoundingClientRect();
    const w = picker.offsetWidth;
    const left = Math.max(8, Math.min(r.left - box.left + r.width / 2 - w / 2, box.width - w - 8));
    const above = r.top - box.top - picker.offsetHeight - 6;
    picker.style.left = `${left}px`;
    picker.style.top = `${above >= 8 ? above : r.bottom - box.top + 6}px`;
    picker.querySelector('button').focus();
  }

  /** Closes the picker; back: focus returns to the message's React button. */
  function closePicker(back) {
    if (!pickerFor) return;
    const id = pickerFor.id;
    pickerFor = null;
    picker.hidden = true;
    const li = els.messages.querySelector(`li.msg[data-id="${CSS.escape(id)}"]`);
    const b = li && li.querySelector('[data-act=react]');
    if (b) {
      b.setAttribute('aria-expanded', 'false');
      if (back) b.focus();
    }
  }

  function onPick(ev) {
    const b = ev.target.closest('button[data-emoji]');
    if (!b || !pickerFor) return;
    const { conv, id } = pickerFor;
    closePicker(true);
    react(conv, id, b.dataset.emoji);
  }

  function onPickerKey(ev) {
    const buttons = [...picker.querySelectorAll('button')];
    const i = buttons.indexOf(document.activeElement);
    let next = null;
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowDown') next = buttons[(i + 1) % buttons.length];
    else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowUp') next = buttons[(i - 1 + buttons.length) % buttons.length];
    else if (ev.key === 'Home') next = buttons[0];
    else if (ev.key === 'End') next = buttons[buttons.length - 1];
    else if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      closePicker(true);
      return;
    } else return;
    ev.preventDefault();
    next.focus();
  }

  // ------------------------------------------------------------ delete

  function askDelete(convId, m) {
    closePicker(false);
    deleting = { conv: convId, id: m.id };
    dialog.querySelector('.delete-preview').textContent = preview(m.body, 160);
    dialog.returnValue = '';
    dialog.showModal();
    dialog.querySelector('button[value=cancel]').focus();
  }

  function onDialogClose() {
    const d = deleting;
    deleting = null;
    if (!d) return;
    const a = app();
    const li = els.messages.querySelector(`li.msg[data-id="${CSS.escape(d.id)}"]`);
    if (dialog.returnValue !== 'delete') {
      // Cancelled: back to the button that asked.
      const b = li && li.querySelector('[data-act=delete]');
      if (b) b.focus();
      return;
    }
    if (li) focusMessage(li);
    if (a.client) a.client.delete(d.conv, d.id).catch((e) => env.showNotice(changeErrorText('delete', e && e.code)));
  }

  // ------------------------------------------------------------ quotes

  /** Scrolls to a reply's original, loading older pages until it is there. */
  async function showOriginal(convId, id) {
    const find = () => els.messages.querySelector(`li.msg[data-id="${CSS.escape(id)}"]`);
    let li = find();
    for (let pages = 0; !li && pages < 20 && app().current === convId && env.hasOlder(convId); pages++) {
      await env.loadOlder();
      li = find();
    }
    if (!li) {
      env.showNotice('The original message is not available.');
      return;
    }
    li.classList.remove('flash');
    // Restart the highlight's animation.
    void li.offsetWidth;
    li.classList.add('flash');
    setTimeout(() => li.classList.remove('flash'), 2000);
    focusMessage(li);
    li.scrollIntoView({ block: 'center', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
  }

  return {
    parts,
    afterRender,
    takeReplyTo,
    submitEdit,
    /** The conversation changed: leave any mode, forget the log's tab stop. */
    reset() {
      mode = null;
      active = null;
      closePicker(false);
      drawContext();
    },
    get mode() {
      return mode;
    },
  };
}
