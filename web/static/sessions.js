// Sessions in the browser (docs/PROTOCOL.md, "Sessions"): where the tokens
// are kept, a silent refresh that one tab at a time performs, and the
// Sessions dialog (where the person is logged in; end one, or all others).
// The refreshing itself is the client library's Session (lib/session.js);
// this module gives it the page's storage and the Web Lock.

import { Session } from './lib/session.js';
import { h } from './dom.js';

export const TOKEN_KEY = 'chat.token';
export const REFRESH_KEY = 'chat.refresh';
export const EXPIRES_KEY = 'chat.expires';
/** The Web Lock every tab of the origin takes to refresh. */
export const REFRESH_LOCK = 'chat.refresh';

/** Stores a login or refresh answer's tokens (SavedTokens or {token, refresh_token, expires_in}). */
export function saveTokens(storage, t, now = Date.now()) {
  storage.setItem(TOKEN_KEY, t.token);
  if (t.refresh_token) storage.setItem(REFRESH_KEY, t.refresh_token);
  else storage.removeItem(REFRESH_KEY);
  const at = t.expires_at ?? (t.expires_in ? now + t.expires_in * 1000 : null);
  if (at) storage.setItem(EXPIRES_KEY, String(at));
  else storage.removeItem(EXPIRES_KEY);
}

/** The stored tokens, or null when there is no access token. */
export function loadTokens(storage) {
  const token = storage.getItem(TOKEN_KEY);
  if (!token) return null;
  const at = Number(storage.getItem(EXPIRES_KEY));
  return { token, refresh_token: storage.getItem(REFRESH_KEY), expires_at: Number.isFinite(at) && at > 0 ? at : null };
}

export function clearTokens(storage) {
  storage.removeItem(TOKEN_KEY);
  storage.removeItem(REFRESH_KEY);
  storage.removeItem(EXPIRES_KEY);
}

/**
 * Runs fn under the origin-wide refresh lock: the server ends a session
 * whose refresh token is presented twice, so two tabs must never refresh at
 * once. A browser without Web Locks runs fn as it is (one tab is then the
 * common case, and a race costs a login, not data).
 */
export function webLock(locks) {
  return (fn) => (locks && locks.request ? locks.request(REFRESH_LOCK, fn) : fn());
}

/**
 * The tokens in IndexedDB as well: what one tab wrote before it released the
 * refresh lock, the next tab to take the lock reads, which localStorage does
 * not promise (Chromium passes its writes between tabs late, and a tab that
 * read a retired refresh token would present it again and end the session,
 * as the e2e test saw). localStorage keeps a copy for the synchronous read
 * at start-up and for the storage event. null without IndexedDB.
 */
export function tokenDB(idb = globalThis.indexedDB) {
  if (!idb) return null;
  let opened = null;
  const open = () =>
    (opened ??= new Promise((resolve, reject) => {
      const req = idb.open('chat.session', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('tokens');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    }));
  const run = async (mode, fn) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('tokens', mode);
      const req = fn(tx.objectStore('tokens'));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  };
  return {
    get: async () => (await run('readonly', (st) => st.get('current'))) ?? null,
    put: (t) => run('readwrite', (st) => st.put({ token: t.token, refresh_token: t.refresh_token ?? null, expires_at: t.expires_at ?? null }, 'current')),
    clear: () => run('readwrite', (st) => st.delete('current')),
  };
}

/**
 * The library's Session over the page's storage: the tab that takes the lock
 * first refreshes and stores the new pair; a tab that waited finds that pair
 * stored and adopts it; a tab whose storage was emptied (logged out in
 * another tab) learns that the session is over. db: tokenDB() (read inside
 * the lock when there is one), else storage alone.
 */
export function browserSession({ api, storage, db = null, locks, onExpired, now }) {
  const t = loadTokens(storage);
  return new Session({
    api,
    token: t ? t.token : '',
    refreshToken: t ? t.refresh_token : null,
    expiresAt: t ? t.expires_at : null,
    onTokens: async (x) => {
      saveTokens(storage, x);
      if (db) await db.put(x);
    },
    onExpired,
    lock: webLock(locks),
    load: async () => {
      if (!db) return loadTokens(storage);
      // A login stores both (app.js); without a record, storage decides.
      return (await db.get()) ?? loadTokens(storage);
    },
    now,
  });
}

// ---------------------------------------------------------------- the dialog

function when(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

/** One row of the list: the device, when it logged in and was last seen, and End (or "This device"). */
export function sessionRow(s) {
  const device = s.device || 'Unknown device';
  return h(
    'li',
    { class: 'session-row' },
    h(
      'div',
      { class: 'session-info' },
      h('strong', { text: device }),
      h('small', { class: 'muted', text: `Logged in ${when(s.created_at)} · last seen ${when(s.last_seen)}` }),
    ),
    s.current
      ? h('span', { class: 'session-current', text: 'This device' })
      : h('button', { type: 'button', class: 'btn secondary small', dataset: { endSession: s.id }, 'aria-label': `End session on ${device}` }, 'End'),
  );
}

/**
 * Wires the Sessions dialog. els: {button, dialog, list, error, endOthers};
 * api: the library's Api; describe: an error as a sentence.
 */
export function sessionsDialog({ els, api, describe }) {
  let seq = 0;
  async function render() {
    const mine = ++seq;
    let list;
    try {
      list = await api.sessions();
    } catch (e) {
      if (mine !== seq) return;
      els.list.replaceChildren();
      els.error.textContent = describe(e);
      return;
    }
    if (mine !== seq) return;
    els.list.replaceChildren(...list.map(sessionRow));
    els.list.setAttribute('aria-busy', 'false');
    els.endOthers.disabled = !list.some((s) => !s.current);
  }
  async function open() {
    els.error.textContent = '';
    els.list.setAttribute('aria-busy', 'true');
    els.list.replaceChildren(h('li', { class: 'muted', text: 'Loading…' }));
    if (!els.dialog.open) els.dialog.showModal();
    await render();
  }
  async function endOne(b) {
    b.disabled = true;
    els.error.textContent = '';
    try {
      await api.endSession(b.dataset.endSession);
    } catch (e) {
      // Already ended (404): the list below shows it gone either way.
      if (e.code !== 'not_found') els.error.textContent = describe(e);
    }
    await render();
    els.dialog.querySelector('[data-close]')?.focus();
  }
  async function endOthers() {
    els.endOthers.disabled = true;
    els.error.textContent = '';
    try {
      // Ended one by one: POST /logout?all=true would end this one too.
      for (const s of await api.sessions()) if (!s.current) await api.endSession(s.id).catch((e) => { if (e.code !== 'not_found') throw e; });
    } catch (e) {
      els.error.textContent = describe(e);
    }
    await render();
  }
  els.button.addEventListener('click', open);
  els.list.addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-end-session]');
    if (b) endOne(b);
  });
  els.endOthers.addEventListener('click', endOthers);
  return { open, render };
}

/**
 * A short name for this browser in the sessions list ("Firefox on Linux"),
 * rather than the whole User-Agent the server would otherwise use.
 */
export function deviceName(ua = '') {
  const browser = /Edg\//.test(ua)
    ? 'Edge'
    : /Firefox\//.test(ua)
      ? 'Firefox'
      : /Chrom(e|ium)\//.test(ua)
        ? /Chromium\//.test(ua) ? 'Chromium' : 'Chrome'
        : /Safari\//.test(ua)
          ? 'Safari'
          : 'Browser';
  const os = /Android/.test(ua)
    ? 'Android'
    : /iPhone|iPad/.test(ua)
      ? 'iOS'
      : /Windows/.test(ua)
        ? 'Windows'
        : /Mac OS X|Macintosh/.test(ua)
          ? 'macOS'
          : /CrOS/.test(ua)
            ? 'ChromeOS'
            : /Linux/.test(ua)
              ? 'Linux'
              : '';
  return os ? `${browser} on ${os}` : browser;
}
