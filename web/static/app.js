// The browser client: session, routing, rendering and wiring between the
// DOM and the client library (clients/ts, built into lib/): its ChatClient
// runs the connection, catch-up, the outbox and the state; the HTTP API is
// its Api (api.js). Everything user-provided reaches the DOM as text only.

import { Api, ApiError, addMembers, describeError, listMembers } from './api.js';
import { Blocks, settingsDialog } from './consent.js';
import { CLOSE_DRAINING } from './conn.js';
import { ChatState, compareIds, displayName, validBody, TYPING_SHOW_MS } from './state.js';
import { ChatClient } from './lib/client.js';
import { dayKey, dayLabel, hue, initials, listStamp, preview, timeOfDay, typingText } from './format.js';
import { $, h, reconcile } from './dom.js';
import { DELETED_TEXT, createMessageUI } from './messages.js';

/** Close code of a connection past the user's bound (docs/PROTOCOL.md, Limits). */
const CLOSE_TOO_MANY_CONNECTIONS = 4029;
import { ListPager, conversationsPage, forgetConversation, leaveGroup } from './convlist.js';
import { TOKEN_KEY, browserSession, clearTokens, deviceName, loadTokens, saveTokens, sessionsDialog, tokenDB } from './sessions.js';

const USER_KEY = 'chat.user';
const OUTBOX_KEY = 'chat.outbox.';
const PAGE = 50;
const NEAR_BOTTOM_PX = 80;
const LOAD_OLDER_PX = 200;
// How close to the end of the conversation list scrolling loads its next page.
const LOAD_MORE_CONVS_PX = 200;

const els = {
  banner: $('#banner'),
  bannerText: $('#banner-text'),
  bannerRetry: $('#banner-retry'),
  auth: $('#auth'),
  authForm: $('#auth-form'),
  authUser: $('#auth-username'),
  authPass: $('#auth-password'),
  authName: $('#auth-display'),
  authError: $('#auth-error'),
  app: $('#app'),
  meAvatar: $('#me-avatar'),
  meName: $('#me-name'),
  meHandle: $('#me-handle'),
  logout: $('#logout'),
  sessionsBtn: $('#sessions-btn'),
  sessionsDialog: $('#sessions-dialog'),
  sessionsList: $('#sessions-list'),
  sessionsError: $('#sessions-error'),
  sessionsEndOthers: $('#sessions-end-others'),
  newGroup: $('#new-group'),
  search: $('#search'),
  searchResults: $('#search-results'),
  searchList: $('#search-list'),
  convNav: $('#conv-nav'),
  convList: $('#conv-list'),
  convEmpty: $('#conv-empty'),
  convMore: $('#conv-more'),
  convMoreStatus: $('#conv-more-status'),
  leaveGroup: $('#leave-group'),
  leaveDialog: $('#leave-dialog'),
  leaveForm: $('#leave-form'),
  leaveError: $('#leave-error'),
  leaveText: $('#leave-dialog-text'),
  emptyPane: $('#empty-pane'),
  conversation: $('#conversation'),
  convAvatar: $('#conv-avatar'),
  convTitle: $('#conv-title'),
  convStatus: $('#conv-status'),
  addMember: $('#add-member'),
  showMembers: $('#show-members'),
  blockUser: $('#block-user'),
  settingsBtn: $('#settings-btn'),
  settingsDialog: $('#settings-dialog'),
  addPolicy: $('#add-policy'),
  settingsStatus: $('#settings-status'),
  membersDialog: $('#members-dialog'),
  membersSummary: $('#members-summary'),
  membersList: $('#members-list'),
  membersMore: $('#members-more'),
  membersError: $('#members-error'),
  log: $('#log'),
  logTop: $('#log-top'),
  messages: $('#messages'),
  composer: $('#composer'),
  input: $('#message'),
  send: $('#send'),
  notice: $('#notice'),
  jump: $('#jump'),
  jumpCount: $('#jump-count'),
  groupDialog: $('#group-dialog'),
  groupForm: $('#group-form'),
  groupTitle: $('#group-title'),
  groupMembers: $('#group-members'),
  groupError: $('#group-error'),
  memberDialog: $('#member-dialog'),
  memberForm: $('#member-form'),
  memberName: $('#member-name'),
  memberError: $('#member-error'),
};

const app = {
  token: null,
  api: new Api({ onUnauthorized: () => expireSession() }),
  state: new ChatState(),
  client: null, // ChatClient of the session
  blocks: null, // the users the person blocks (consent.js), once signed in
  session: null, // the library's Session: renews the access token (sessions.js)
  tokenDB: tokenDB(), // the tokens where every tab reads what another wrote (sessions.js)
  current: null, // open conversation ID
  routeError: null,
  loadingOlder: false,
  loadingNewest: new Set(),
  msgCache: new Map(),
  listCache: new Map(),
  renderQueued: false,
  typingTimer: null,
  bannerTimer: null,
  searchSeq: 0,
  // Big groups (over 100 members) carry member_count and no members;
  // their online count is asked for (docs/PROTOCOL.md, presence on request).
  onlineCounts: new Map(), // conversation ID -> {count, at}
  members: null, // the members dialog: {id, next, count, online}
  // The conversation list past hello's, a page at a time (convlist.js).
  list: new ListPager({
    load: (before) => conversationsPage(app.api, { before }),
    add: (convs) => {
      for (const c of convs) app.state.upsertConversation(c);
    },
  }),
  leaving: null, // the group the leave dialog asks about
};

// Edit, delete, reply and react (messages.js).
const ui = createMessageUI({
  els,
  app: () => app,
  showNotice: (text) => showNotice(text),
  autoGrow: () => autoGrow(),
  loadOlder: () => loadOlder(),
  hasOlder: (id) => app.state.hasOlder(id),
});

// ---------------------------------------------------------------- session

/** Keeps a login answer: the tokens (sessions.js) and who logged in. */
async function saveSession(res) {
  saveTokens(localStorage, res);
  localStorage.setItem(USER_KEY, JSON.stringify(res.user));
  // Before the session starts: a refresh reads its tokens from here.
  await app.tokenDB?.put(loadTokens(localStorage)).catch(() => app.tokenDB.clear().catch(() => {}));
}

function loadSession() {
  const token = loadTokens(localStorage)?.token;
  let user = null;
  try {
    user = JSON.parse(localStorage.getItem(USER_KEY) || 'null');
  } catch {
    user = null;
  }
  return token && user && user.id ? { token, user } : null;
}

function saveOutbox() {
  const me = app.state.me;
  if (!me) return;
  const list = app.state.exportOutbox();
  if (list.length) localStorage.setItem(OUTBOX_KEY + me.id, JSON.stringify(list));
  else localStorage.removeItem(OUTBOX_KEY + me.id);
}

function loadOutbox(userId) {
  try {
    app.state.importOutbox(JSON.parse(localStorage.getItem(OUTBOX_KEY + userId) || '[]'));
  } catch {
    // A damaged outbox is dropped rather than blocking the app.
  }
}

function startSession(token, user) {
  // The access token lasts minutes: the session renews it ahead of expiry
  // and after a 401 or 4001, one tab at a time, and the socket opens with a
  // single-use ticket, so no token goes in a URL.
  app.session = browserSession({ api: app.api, storage: localStorage, db: app.tokenDB, locks: navigator.locks, onExpired: () => expireSession() });
  app.session.start();
  app.token = token;
  app.state = new ChatState();
  app.state.me = user;
  app.state.users.set(user.id, { ...user, online: true });
  loadOutbox(user.id);
  app.msgCache.clear();
  app.listCache.clear();
  app.list.reset(null);
  els.messages.replaceChildren();
  els.convList.replaceChildren();
  showApp();
  app.client = new ChatClient({
    baseUrl: location.origin,
    api: app.api,
    session: app.session,
    token: app.session.token,
    state: app.state,
    WebSocket,
    viewing: isViewing,
    onFrame,
    onStatus,
    onChange: scheduleRender,
    onOutbox: saveOutbox,
    onCatchUp,
    onAuthExpired: () => expireSession(),
    onConnectFailed: () => checkToken(),
  });
  app.client.start();
  app.blocks = new Blocks(app.api);
  app.blocks.load().then(scheduleRender, () => {});
  route();
}

/** A connection that closed before its hello may mean a refused token: ask the API. */
async function checkToken() {
  try {
    await app.api.me();
  } catch {
    // A 401 already went through onUnauthorized; anything else is the network.
  }
}

function expireSession() {
  endSession('Your session has expired. Log in again.');
}

function endSession(message) {
  if (app.client) app.client.stop();
  app.client = null;
  if (app.session) app.session.stop();
  app.session = null;
  app.token = null;
  app.api.token = null;
  clearTokens(localStorage);
  app.tokenDB?.clear().catch(() => {});
  localStorage.removeItem(USER_KEY);
  app.current = null;
  clearTimeout(app.bannerTimer);
  app.bannerTimer = null;
  showAuth(message || '');
}

/** Logs out for real: the server ends the session, then the page forgets it. */
async function logout() {
  const client = app.client;
  if (client) {
    els.logout.disabled = true;
    try {
      await client.logout();
    } catch {
      // Offline or already ended: forgotten here anyway; the server lets the
      // access token lapse within minutes and the session with its refresh token.
    } finally {
      els.logout.disabled = false;
    }
  }
  forgetSession('');
}

/** Forgets the session in this page: its unsent messages too, they were this person's. */
function forgetSession(message) {
  const me = app.state.me;
  if (me) localStorage.removeItem(OUTBOX_KEY + me.id);
  app.state = new ChatState();
  endSession(message);
  if (location.pathname !== '/') history.replaceState(null, '', '/');
}

function showAuth(message) {
  els.app.hidden = true;
  els.banner.hidden = true;
  els.auth.hidden = false;
  els.authError.textContent = message;
  document.title = 'Chat';
  els.authPass.value = '';
  els.authUser.focus();
}

function showApp() {
  els.auth.hidden = true;
  els.app.hidden = false;
  const me = app.state.me;
  els.meName.textContent = displayName(me);
  els.meHandle.textContent = '@' + me.username;
  paintAvatar(els.meAvatar, me.id, displayName(me));
}

async function onAuthSubmit(ev) {
  ev.preventDefault();
  const mode = ev.submitter && ev.submitter.value === 'signup' ? 'signup' : 'login';
  const username = els.authUser.value.trim().toLowerCase();
  const password = els.authPass.value;
  els.authError.textContent = '';
  if (!/^[a-z0-9_.-]{3,32}$/.test(username)) {
    els.authError.textContent = 'Usernames are 3–32 characters: letters, digits, and _ . -';
    els.authUser.focus();
    return;
  }
  const pwLen = [...password].length;
  if (pwLen < 8 || pwLen > 256) {
    els.authError.textContent = 'Passwords are at least 8 characters.';
    els.authPass.focus();
    return;
  }
  setBusy(els.authForm, true);
  try {
    const res =
      mode === 'signup'
        ? await app.api.signup(username, password, els.authName.value.trim() || undefined, deviceName(navigator.userAgent))
        : await app.api.login(username, password, deviceName(navigator.userAgent));
    await saveSession(res);
    els.authPass.value = '';
    startSession(res.token, res.user);
  } catch (e) {
    els.authError.textContent =
      mode === 'login' && e.code === 'unauthorized' ? 'Wrong username or password.' : describeError(e);
  } finally {
    setBusy(els.authForm, false);
  }
}

function setBusy(form, busy) {
  for (const b of form.querySelectorAll('button')) b.disabled = busy;
  form.setAttribute('aria-busy', busy ? 'true' : 'false');
}

// ---------------------------------------------------------------- connection

function onStatus(status, info) {
  if (status === 'online') {
    clearTimeout(app.bannerTimer);
    app.bannerTimer = null;
    els.banner.hidden = true;
  } else if (status === 'offline') {
    // The client library already put unanswered sends back in the queue.
    // A quick reconnect (a draining gateway, a blip) should not flash the
    // banner; anything longer shows it until the next hello.
    // 4029: the user holds as many connections as the server allows
    // (docs/PROTOCOL.md, Limits); reconnecting waits on backoff.
    els.bannerText.textContent = info && info.code === CLOSE_TOO_MANY_CONNECTIONS
      ? 'Too many tabs or devices connected: close one. Reconnecting…'
      : 'Offline, reconnecting…';
    if (!app.bannerTimer && els.banner.hidden) {
      const grace = info && info.code === CLOSE_DRAINING ? 2500 : 1000;
      app.bannerTimer = setTimeout(() => {
        app.bannerTimer = null;
        if (app.client && !app.client.isReady) els.banner.hidden = false;
      }, grace);
    }
  }
  scheduleRender();
}

/**
 * Every server frame, after the client library applied it to the state
 * (and, for hello, started the catch-up and resent the outbox); `r` is what
 * applying it did.
 */
function onFrame(f, r) {
  switch (f.type) {
    case 'hello':
      // The rest of the list, older than hello's, is loaded on demand.
      app.list.reset(f.next_before);
      if (f.user) {
        localStorage.setItem(USER_KEY, JSON.stringify(f.user));
        showApp();
      }
      route();
      maybeMarkRead();
      break;
    case 'message':
      if (r && r.unknownConversation) refreshConversations();
      if (r && r.added && isViewing(f.message && f.message.conversation)) maybeMarkRead();
      break;
    case 'typing':
      clearTimeout(app.typingTimer);
      app.typingTimer = setTimeout(scheduleRender, TYPING_SHOW_MS + 50);
      break;
    case 'conversation':
      if (r && r.isNew && app.current == null) route();
      break;
    case 'left': {
      // We left a group (on any device): it goes from the list.
      const id = f.conversation;
      forgetConversation(app.state, id);
      app.onlineCounts.delete(id);
      if (app.leaving === id && els.leaveDialog.open) els.leaveDialog.close();
      if (app.current === id) navigate('/', { replace: true });
      break;
    }
    case 'error':
      // Errors for requests are answered to the requests; the rest (a read
      // or typing refused) need no reaction beyond the console.
      console.warn('server error', f.code, f.message);
      break;
    default:
      break;
  }
  scheduleRender();
}

/** A conversation's catch-up after a hello ended (the library pages through `history after`). */
function onCatchUp(convId, outcome) {
  if (outcome === 'reload' && app.current === convId) loadNewest(convId);
  else if (outcome === 'done' && isViewing(convId)) maybeMarkRead();
  scheduleRender();
}

async function refreshConversations() {
  try {
    const res = await app.api.conversations();
    for (const c of res.conversations || []) app.state.upsertConversation(c);
  } catch {
    // The next hello brings the list anyway.
  }
  scheduleRender();
}

function flushOutbox() {
  if (app.client) app.client.flush();
  else saveOutbox();
}

// ---------------------------------------------------------------- routing

function navigate(path, { replace = false } = {}) {
  if (location.pathname !== path) {
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }
  route();
}

/** Shows what the URL names: the list, /<username>/ or /g/<id>/. */
async function route() {
  if (!app.token) return;
  const path = decodeURIComponent(location.pathname);
  const parts = path.split('/').filter(Boolean);
  app.routeError = null;
  if (parts.length === 0) {
    openConversation(null);
    return;
  }
  if (parts[0] === 'g' && parts.length === 2) {
    const id = parts[1];
    if (app.state.conv(id)) openConversation(id);
    else if (app.state.hellos > 0) {
      await refreshConversations();
      // An older conversation than hello's: through the list's pages.
      while (!app.state.conv(id) && app.list.more) {
        try {
          await app.list.next();
        } catch {
          break;
        }
      }
      if (decodeURIComponent(location.pathname) !== path) return;
      if (app.state.conv(id)) openConversation(id);
      else showRouteError('This conversation does not exist, or you are not in it.');
    }
    return;
  }
  if (parts.length === 1) {
    const username = parts[0].toLowerCase();
    if (app.state.me && username === app.state.me.username) {
      showRouteError('That is you. Search for someone to talk to.');
      return;
    }
    const known = app.state.directWith(username);
    if (known) {
      openConversation(known.id);
      return;
    }
    try {
      const c = await app.api.direct(username);
      if (decodeURIComponent(location.pathname).toLowerCase() !== path.toLowerCase()) return;
      app.state.upsertConversation(c, { front: !app.state.conv(c.id) });
      openConversation(c.id);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'not_found') showRouteError(`There is no user called “${username}”.`);
      else if (e instanceof ApiError && e.status === 400) showRouteError('You cannot open a conversation with yourself.');
      else showRouteError(describeError(e));
    }
    return;
  }
  showRouteError('Nothing here.');
}

function showRouteError(text) {
  app.current = null;
  app.routeError = text;
  scheduleRender();
}

function pathFor(convId) {
  const rec = app.state.conv(convId);
  if (rec && rec.kind === 'direct') {
    const p = app.state.peer(convId);
    if (p && p.username) return `/${p.username}/`;
  }
  return `/g/${convId}/`;
}

function openConversation(id) {
  const changed = app.current !== id;
  app.current = id;
  if (changed) {
    app.msgCache.clear();
    els.messages.replaceChildren();
    app.loadingOlder = false;
    ui.reset();
    els.input.value = '';
    autoGrow();
    if (app.client) app.client.resetTyping();
  }
  renderNow();
  if (id == null) return;
  const rec = app.state.conv(id);
  if (rec && !rec.loaded) loadNewest(id);
  if (rec && changed && isBig(rec)) refreshOnlineCount(id);
  if (changed) {
    scrollToBottom();
    // On a phone the keyboard would cover the conversation; focus the
    // composer only where there is room.
    if (matchMedia('(min-width: 760px)').matches) els.input.focus({ preventScroll: true });
  }
  maybeMarkRead();
}

async function loadNewest(id) {
  if (app.loadingNewest.has(id)) return;
  app.loadingNewest.add(id);
  scheduleRender();
  try {
    await app.client.loadNewest(id, PAGE);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'not_found' && app.current === id) showRouteError('This conversation does not exist, or you are not in it.');
  } finally {
    app.loadingNewest.delete(id);
  }
  if (app.current === id) {
    renderNow();
    scrollToBottom();
    maybeMarkRead();
    fillViewport();
  } else {
    scheduleRender();
  }
}

async function loadOlder() {
  const id = app.current;
  if (!id || app.loadingOlder || !app.state.hasOlder(id)) return;
  const rec = app.state.conv(id);
  if (!rec.loaded) return;
  const before = rec.nextBefore || app.state.oldestLoadedId(id);
  if (!before) return;
  app.loadingOlder = true;
  renderNow();
  try {
    const res = await app.api.messages(id, { before, limit: PAGE });
    if (app.current !== id) return;
    const log = els.log;
    const fromBottom = log.scrollHeight - log.scrollTop;
    app.state.applyHistoryBefore(id, res.messages, res.next_before);
    app.loadingOlder = false;
    renderNow();
    // Keep the message that was at the top where it was.
    log.scrollTop = log.scrollHeight - fromBottom;
  } catch {
    // Scrolling up again retries.
  } finally {
    app.loadingOlder = false;
  }
  renderNow();
  fillViewport();
}

/** Loads older pages until the log can scroll, so scrolling up can load more. */
function fillViewport() {
  const log = els.log;
  if (app.current && log.scrollHeight <= log.clientHeight + LOAD_OLDER_PX && app.state.hasOlder(app.current)) {
    setTimeout(loadOlder, 0);
  }
}

// ---------------------------------------------------------------- reading and typing

function isViewing(convId) {
  return (
    convId != null &&
    convId === app.current &&
    document.visibilityState === 'visible' &&
    document.hasFocus() &&
    nearBottom()
  );
}

function nearBottom() {
  const log = els.log;
  return log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM_PX;
}

/** Sends `read` for the newest message of the open conversation while the user can see it. */
function maybeMarkRead() {
  const id = app.current;
  if (!isViewing(id) || !app.client || !app.client.isReady) return;
  if (app.client.markRead(id)) scheduleRender();
}

function onComposerInput() {
  autoGrow();
  if (!app.current || !els.input.value.trim()) return;
  if (app.client) app.client.typing(app.current);
}

function autoGrow() {
  const ta = els.input;
  ta.style.height = 'auto';
  ta.style.height = Math.min(ta.scrollHeight, 160) + 'px';
}

function onComposerKey(ev) {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
    ev.preventDefault();
    els.composer.requestSubmit();
  }
}

function onSend(ev) {
  ev.preventDefault();
  const id = app.current;
  const body = els.input.value;
  if (!id) return;
  if (ui.submitEdit(id, body)) {
    renderNow();
    return;
  }
  if (!validBody(body)) {
    if ([...body].length > 4096) showNotice('Messages can be at most 4,096 characters.');
    return;
  }
  app.state.enqueue(id, body, { replyTo: ui.takeReplyTo(id) });
  els.input.value = '';
  autoGrow();
  if (app.client) app.client.resetTyping(id);
  showNotice('');
  flushOutbox();
  renderNow();
  scrollToBottom();
  els.input.focus();
}

function showNotice(text) {
  els.notice.textContent = text;
  els.notice.hidden = !text;
}

// ---------------------------------------------------------------- rendering

function scheduleRender() {
  if (app.renderQueued) return;
  app.renderQueued = true;
  requestAnimationFrame(() => {
    app.renderQueued = false;
    renderNow();
  });
}

function renderNow() {
  if (!app.token || !app.state.me) return;
  const stick = nearBottom();
  renderList();
  renderPane();
  ui.afterRender();
  if (stick && app.current) scrollToBottom();
  else updateJump();
  const n = app.state.totalUnread();
  document.title = n ? `(${n}) Chat` : 'Chat';
}

function scrollToBottom() {
  els.log.scrollTop = els.log.scrollHeight;
  updateJump();
}

/** Shows the jump-to-newest button when scrolled well up, with the unread count. */
function updateJump() {
  const log = els.log;
  const far = log.scrollHeight - log.scrollTop - log.clientHeight > 300;
  const rec = app.current && app.state.conv(app.current);
  els.jump.hidden = !rec || !far;
  const n = rec ? rec.unread : 0;
  els.jumpCount.hidden = !n;
  els.jumpCount.textContent = n ? String(n) : '';
}

function paintAvatar(el, id, name) {
  el.textContent = initials(name);
  el.style.setProperty('--h', String(hue(id)));
}

function avatar(id, name, online, cls = '') {
  const a = h('span', { class: `avatar ${cls}`, 'aria-hidden': 'true', text: initials(name) });
  a.style.setProperty('--h', String(hue(id)));
  if (online) a.append(h('span', { class: 'dot' }));
  return a;
}

function renderList() {
  const st = app.state;
  const now = new Date();
  const items = [];
  for (const id of st.order) {
    const rec = st.conv(id);
    if (!rec) continue;
    const title = st.title(id);
    // Presence is unknown while disconnected: show no one as online.
    const online = st.connected && (rec.kind === 'direct' ? !!st.peer(id)?.online : st.anyoneOnline(id));
    const typing = st.typingUsers(id);
    const last = rec.lastMessage;
    let pre = '';
    if (typing.length) pre = rec.kind === 'direct' ? 'typing…' : typingText(typing.map((u) => displayName(st.user(u))));
    else if (last) {
      const who = st.me && last.sender === st.me.id ? 'You: ' : rec.kind === 'group' ? displayName(st.user(last.sender)).split(' ')[0] + ': ' : '';
      pre = who + (last.deleted ? DELETED_TEXT : preview(last.body));
    } else pre = rec.kind === 'group' ? `${memberCount(rec)} members` : 'No messages yet';
    const stamp = last ? listStamp(last.sent_at, { now }) : '';
    const unread = rec.unread || 0;
    const current = id === app.current;
    const href = pathFor(id);
    const sig = JSON.stringify([title, online, pre, !!typing.length, stamp, unread, current, href, rec.kind]);
    items.push({
      key: id,
      sig,
      // The link's name is its visible text plus hidden words for what
      // only colour shows (online, the unread badge).
      build: () =>
        h(
          'li',
          {},
          h(
            'a',
            {
              class: `conv${unread ? ' has-unread' : ''}`,
              href,
              'aria-current': current ? 'page' : null,
              dataset: { conv: id },
            },
            avatar(id, title, online, rec.kind === 'group' ? 'group' : ''),
            h(
              'span',
              { class: 'conv-main' },
              h(
                'span',
                { class: 'conv-top' },
                h('span', { class: 'conv-name' }, title, online ? h('span', { class: 'visually-hidden', text: ', online,' }) : null),
                h('span', { class: 'conv-time', text: stamp }),
              ),
              h(
                'span',
                { class: 'conv-bottom' },
                h('span', { class: `conv-preview${typing.length ? ' is-typing' : ''}`, text: pre }),
                unread
                  ? h('span', { class: 'badge' }, unread > 99 ? '99+' : String(unread), h('span', { class: 'visually-hidden', text: ' unread' }))
                  : null,
              ),
            ),
          ),
        ),
    });
  }
  reconcile(els.convList, items, app.listCache);
  els.convEmpty.hidden = items.length > 0 || app.list.more;
  els.convMore.hidden = !app.list.more;
  els.convMore.disabled = app.list.loading;
  els.convMore.textContent = app.list.loading ? 'Loading conversations…' : 'Show more conversations';
}

function renderPane() {
  const st = app.state;
  const id = app.current;
  const rec = id && st.conv(id);
  document.body.classList.toggle('has-conv', !!rec || !!app.routeError);
  if (!rec) {
    els.conversation.hidden = true;
    els.emptyPane.hidden = false;
    const p = els.emptyPane.querySelector('p');
    p.textContent = app.routeError || 'Pick a conversation, or search for someone to start one.';
    els.emptyPane.classList.toggle('is-error', !!app.routeError);
    return;
  }
  els.emptyPane.hidden = true;
  els.conversation.hidden = false;
  const title = st.title(id);
  els.convTitle.textContent = title;
  const typing = st.typingUsers(id);
  let status;
  let statusClass = '';
  if (!st.connected) {
    status = 'connecting…';
    paintAvatar(els.convAvatar, id, title);
    els.convAvatar.classList.remove('is-online');
    els.convAvatar.classList.toggle('group', rec.kind === 'group');
  } else if (rec.kind === 'direct') {
    const p = st.peer(id);
    if (typing.length) {
      status = 'typing…';
      statusClass = 'is-typing';
    } else if (p && p.online) {
      status = 'online';
      statusClass = 'is-online';
    } else status = 'offline';
    paintAvatar(els.convAvatar, id, title);
    els.convAvatar.classList.toggle('is-online', !!(p && p.online));
    els.convAvatar.classList.remove('group');
  } else {
    if (typing.length) {
      status = typingText(typing.map((u) => displayName(st.user(u))));
      statusClass = 'is-typing';
    } else {
      let online;
      if (isBig(rec)) {
        const oc = app.onlineCounts.get(id);
        online = oc ? oc.count : 0;
      } else {
        const others = rec.members.filter((m) => m !== st.me.id);
        online = others.filter((m) => st.user(m)?.online).length;
      }
      status = `${memberCount(rec)} members${online ? `, ${online} online` : ''}`;
    }
    paintAvatar(els.convAvatar, id, title);
    els.convAvatar.classList.remove('is-online');
    els.convAvatar.classList.add('group');
  }
  els.convStatus.textContent = status;
  els.convStatus.className = statusClass;
  els.addMember.hidden = rec.kind !== 'group';
  els.showMembers.hidden = rec.kind !== 'group';
  els.leaveGroup.hidden = rec.kind !== 'group';
  const peer = rec.kind === 'direct' ? st.peer(id) : null;
  els.blockUser.hidden = !peer || !app.blocks;
  if (peer && app.blocks) {
    const blocked = app.blocks.has(peer.id);
    els.blockUser.textContent = blocked ? 'Unblock' : 'Block';
    els.blockUser.setAttribute('aria-pressed', String(blocked));
  }
  const loading = app.loadingOlder || app.loadingNewest.has(id);
  els.logTop.textContent = loading ? 'Loading…' : rec.loaded && !st.hasOlder(id) ? 'This is the beginning of the conversation.' : '';
  renderMessages(id, rec);
}

function renderMessages(id, rec) {
  const st = app.state;
  const me = st.me.id;
  const timeline = st.timeline(id);
  const seen = st.seenMarks(id);
  const now = new Date();
  // The last of my stored messages, which says "Sent" unless someone saw it.
  let lastMine = null;
  for (const it of timeline) if (it.message && it.mine) lastMine = it.message.id;
  // "Seen" goes under the newest of my messages that anyone has seen.
  let seenAt = null;
  for (const mid of seen.keys()) if (!seenAt || compareIds(mid, seenAt) > 0) seenAt = mid;
  const seenUsers = seenAt ? seen.get(seenAt) : [];
  const items = [];
  let prevDay = null;
  let prev = null;
  for (const it of timeline) {
    const when = it.message ? it.message.sent_at : new Date(it.entry.createdAt).toISOString();
    const day = dayKey(when);
    if (day !== prevDay) {
      const label = dayLabel(when, { now });
      items.push({ key: `d:${day}`, sig: label, build: () => h('li', { class: 'day' }, h('span', { text: label })) });
      prevDay = day;
      prev = null;
    }
    const sender = it.message ? it.message.sender : me;
    const t = new Date(when).getTime();
    const joined = prev && prev.sender === sender && t - prev.t < 5 * 60 * 1000;
    const showName = rec.kind === 'group' && !it.mine && !joined;
    const body = it.message ? it.message.body : it.entry.body;
    const time = timeOfDay(when);
    let receipt = null;
    if (it.status === 'pending') receipt = { text: 'Sending…', cls: 'pending' };
    else if (it.status === 'failed') receipt = { text: 'Not sent', cls: 'failed', retry: it.entry.client_id, error: it.entry.error };
    else if (it.message && it.message.id === seenAt) {
      const names = seenUsers.map((u) => displayName(st.user(u)).split(' ')[0]);
      receipt = { text: rec.kind === 'direct' ? 'Seen' : `Seen by ${names.join(', ')}`, cls: 'seen' };
    } else if (it.message && it.mine && it.message.id === lastMine && (!seenAt || compareIds(it.message.id, seenAt) > 0)) {
      receipt = { text: 'Sent', cls: 'sent' };
    }
    const senderName = showName ? displayName(st.user(sender)) : '';
    const x = ui.parts(it, id);
    const sig = JSON.stringify([body, time, it.status, joined, senderName, receipt, it.message ? it.message.id : '', x.sig]);
    const key = it.key;
    const status = it.status;
    const msgId = it.message ? it.message.id : '';
    items.push({
      key,
      sig,
      build: () => {
        const y = x.build();
        return h(
          'li',
          {
            class: `msg ${it.mine ? 'mine' : 'theirs'}${joined ? ' joined' : ''}`,
            dataset: { id: msgId, status: status || 'received' },
          },
          senderName ? h('span', { class: 'sender', text: senderName }) : null,
          h(
            'div',
            { class: 'bubble' },
            y.quote,
            y.body || h('p', { class: 'body', text: body }),
            h('span', { class: 'meta' }, y.edited, h('time', { datetime: when, title: new Date(when).toLocaleString(), text: time })),
          ),
          y.reactions,
          y.actions,
          receipt
            ? h(
                'div',
                { class: `receipt ${receipt.cls}` },
                h('span', { text: receipt.text }),
                receipt.retry
                  ? h('button', { type: 'button', class: 'link', dataset: { retry: receipt.retry }, text: 'Retry' })
                  : null,
                receipt.retry
                  ? h('button', { type: 'button', class: 'link', dataset: { discard: receipt.retry }, text: 'Delete' })
                  : null,
              )
            : null,
        );
      },
    });
    prev = { sender, t };
  }
  reconcile(els.messages, items, app.msgCache);
}

// ---------------------------------------------------------------- search, groups, members

let searchTimer = null;

function onSearchInput() {
  clearTimeout(searchTimer);
  const q = els.search.value.trim().toLowerCase();
  if (!q) {
    els.searchResults.hidden = true;
    els.convNav.hidden = false;
    els.searchList.replaceChildren();
    return;
  }
  searchTimer = setTimeout(() => runSearch(q), 150);
}

async function runSearch(q) {
  const seq = ++app.searchSeq;
  let users = [];
  let error = '';
  try {
    const res = await app.api.searchUsers(q);
    users = (res.users || []).filter((u) => !app.state.me || u.id !== app.state.me.id);
  } catch (e) {
    error = describeError(e);
  }
  if (seq !== app.searchSeq) return;
  els.searchResults.hidden = false;
  els.convNav.hidden = true;
  if (error || users.length === 0) {
    els.searchList.replaceChildren(h('li', { class: 'search-empty', text: error || `No one found for “${q}”.` }));
    return;
  }
  els.searchList.replaceChildren(
    ...users.map((u) =>
      h(
        'li',
        {},
        h(
          'a',
          { class: 'conv', href: `/${u.username}/`, dataset: { search: '1' } },
          avatar(u.id, displayName(u), false),
          h(
            'span',
            { class: 'conv-main' },
            h('span', { class: 'conv-top' }, h('span', { class: 'conv-name', text: displayName(u) })),
            h('span', { class: 'conv-bottom' }, h('span', { class: 'conv-preview', text: '@' + u.username })),
          ),
        ),
      ),
    ),
  );
}

function clearSearch() {
  els.search.value = '';
  onSearchInput();
}

function openGroupDialog() {
  els.groupForm.reset();
  els.groupError.textContent = '';
  els.groupDialog.showModal();
  els.groupTitle.focus();
}

function splitNames(s) {
  return [...new Set(s.split(/[\s,;]+/u).map((x) => x.replace(/^@/, '').trim().toLowerCase()).filter(Boolean))];
}

async function onGroupSubmit(ev) {
  ev.preventDefault();
  const title = els.groupTitle.value.trim();
  const members = splitNames(els.groupMembers.value).filter((u) => u !== app.state.me.username);
  if (!title) {
    els.groupError.textContent = 'Give the group a name.';
    els.groupTitle.focus();
    return;
  }
  setBusy(els.groupForm, true);
  try {
    const c = await app.api.createGroup(title, members);
    app.state.upsertConversation(c, { front: true });
    els.groupDialog.close();
    navigate(`/g/${c.id}/`);
  } catch (e) {
    els.groupError.textContent = e.code === 'not_found' ? 'One of those usernames does not exist.' : describeError(e);
  } finally {
    setBusy(els.groupForm, false);
  }
}

// ---------------------------------------------------------------- members of big groups

/** A group's member count: member_count when the server sent it. */
function memberCount(rec) {
  return typeof rec.memberCount === 'number' ? rec.memberCount : rec.members.length;
}

/** Whether a group is too big to carry its members (and presence) inline. */
function isBig(rec) {
  return rec.kind === 'group' && memberCount(rec) > rec.members.length;
}

/** How long an online count of a big group is shown before it is asked again. */
const ONLINE_COUNT_FRESH_MS = 30_000;

async function refreshOnlineCount(id) {
  const known = app.onlineCounts.get(id);
  if (known && Date.now() - known.at < ONLINE_COUNT_FRESH_MS) return;
  try {
    const p = await listMembers(app.api, id, { limit: 1 });
    if (typeof p.online_count === 'number') app.onlineCounts.set(id, { count: p.online_count, at: Date.now() });
    scheduleRender();
  } catch {
    // The count is a nicety: the header shows the member count without it.
  }
}

function openMembersDialog() {
  const id = app.current;
  if (!id) return;
  app.members = { id, next: null, count: 0, online: null };
  els.membersList.replaceChildren();
  els.membersSummary.textContent = 'Loading…';
  els.membersError.textContent = '';
  els.membersMore.hidden = true;
  els.membersDialog.showModal();
  loadMembersPage();
}

/** Appends the next page of the open members dialog: a page at a time, so
 * that a group of 10,000 opens as fast as one of 10. */
async function loadMembersPage() {
  const m = app.members;
  if (!m || m.loading) return;
  m.loading = true;
  els.membersMore.disabled = true;
  try {
    const p = await listMembers(app.api, m.id, { after: m.next, limit: 100 });
    if (app.members !== m) return;
    if (typeof p.online_count === 'number') {
      m.online = p.online_count;
      app.onlineCounts.set(m.id, { count: p.online_count, at: Date.now() });
    }
    m.count = p.member_count;
    m.next = p.next_after;
    const items = p.members.map((u) => {
      const name = displayName(u);
      return h('li', { 'data-user': u.id },
        avatar(u.id, name, !!u.online),
        h('span', {}, name, ' ', h('span', { class: 'muted', text: '@' + u.username })),
        u.online ? h('span', { class: 'visually-hidden', text: ', online' }) : null);
    });
    els.membersList.append(...items);
    const shown = els.membersList.children.length;
    els.membersSummary.textContent = `${m.count} members${m.online ? `, ${m.online} online` : ''}` +
      (shown < m.count ? ` · showing ${shown}` : '');
    els.membersMore.hidden = !m.next;
    scheduleRender();
  } catch (e) {
    if (app.members === m) els.membersError.textContent = describeError(e);
  } finally {
    m.loading = false;
    els.membersMore.disabled = false;
  }
}

function openMemberDialog() {
  els.memberForm.reset();
  els.memberError.textContent = '';
  els.memberDialog.showModal();
  els.memberName.focus();
}

async function onMemberSubmit(ev) {
  ev.preventDefault();
  const names = splitNames(els.memberName.value);
  const id = app.current;
  if (!names.length || !id) return;
  setBusy(els.memberForm, true);
  try {
    // One call per page of up to 1,000 names.
    for (let i = 0; i < names.length; i += 1000) {
      const page = names.slice(i, i + 1000);
      const c = page.length === 1 ? await app.api.addMember(id, page[0]) : await addMembers(app.api, id, page);
      app.state.upsertConversation(c);
    }
    els.memberDialog.close();
    scheduleRender();
  } catch (e) {
    els.memberError.textContent = e.code === 'not_found' ? 'No user with that username.' : describeError(e);
  } finally {
    setBusy(els.memberForm, false);
  }
}

// ---------------------------------------------------------------- the paged conversation list

/**
 * Loads the next page of older conversations (newest activity first). From
 * the button, focus moves to the first conversation it brought, so a
 * keyboard user carries on where the list grew.
 */
async function loadMoreConversations({ fromButton = false } = {}) {
  if (!app.list.more || app.list.loading) return;
  const p = app.list.next();
  renderNow();
  let added = [];
  try {
    added = await p;
  } catch (e) {
    els.convMoreStatus.textContent = 'Could not load more conversations: ' + describeError(e);
    renderNow();
    return;
  }
  renderNow();
  els.convMoreStatus.textContent = added.length
    ? `${added.length} more conversation${added.length === 1 ? '' : 's'} loaded${app.list.more ? '' : ', that is all'}.`
    : 'No more conversations.';
  if (fromButton && added.length) {
    els.convList.querySelector(`a[data-conv="${CSS.escape(added[0].id)}"]`)?.focus();
  }
}

// ---------------------------------------------------------------- leaving a group

function openLeaveDialog() {
  const id = app.current;
  const rec = id && app.state.conv(id);
  if (!rec || rec.kind !== 'group') return;
  app.leaving = id;
  els.leaveError.textContent = '';
  els.leaveDialog.querySelector('h2').textContent = `Leave “${app.state.title(id)}”?`;
  els.leaveDialog.showModal();
  els.leaveDialog.querySelector('[data-close]').focus();
}

async function onLeaveSubmit(ev) {
  ev.preventDefault();
  const id = app.leaving;
  if (!id) return;
  setBusy(els.leaveForm, true);
  try {
    await leaveGroup(app.api, id);
    // The `left` frame does the same on every connection; this one does not wait for it.
    forgetConversation(app.state, id);
    app.onlineCounts.delete(id);
    els.leaveDialog.close();
    if (app.current === id) navigate('/', { replace: true });
    els.search.focus();
  } catch (e) {
    els.leaveError.textContent = e.code === 'not_found' ? 'You are no longer in this group.' : describeError(e);
  } finally {
    setBusy(els.leaveForm, false);
  }
}

// ---------------------------------------------------------------- wiring

function onDocumentClick(ev) {
  const a = ev.target.closest('a[href]');
  if (a && a.origin === location.origin && !ev.metaKey && !ev.ctrlKey && !ev.shiftKey && !ev.altKey && ev.button === 0) {
    ev.preventDefault();
    if (a.dataset.search) clearSearch();
    navigate(a.pathname);
    return;
  }
  const retry = ev.target.closest('[data-retry]');
  if (retry) {
    app.state.retry(retry.dataset.retry);
    flushOutbox();
    renderNow();
    return;
  }
  const close = ev.target.closest('[data-close]');
  if (close) {
    close.closest('dialog')?.close();
    return;
  }
  const discard = ev.target.closest('[data-discard]');
  if (discard) {
    app.state.discard(discard.dataset.discard);
    saveOutbox();
    renderNow();
  }
}

/** Blocks or unblocks the other person of the open direct conversation. */
async function toggleBlock() {
  const id = app.current;
  const peer = id && app.state.peer(id);
  const user = peer && app.state.user(peer.id);
  if (!user || !user.username || !app.blocks) return;
  const on = !app.blocks.has(user.id);
  els.blockUser.disabled = true;
  try {
    await app.blocks.set(user, on);
  } catch (e) {
    showNotice(describeError(e));
  } finally {
    els.blockUser.disabled = false;
    renderNow();
    els.blockUser.focus();
  }
}

function init() {
  els.authForm.addEventListener('submit', onAuthSubmit);
  els.logout.addEventListener('click', logout);
  sessionsDialog({
    els: { button: els.sessionsBtn, dialog: els.sessionsDialog, list: els.sessionsList, error: els.sessionsError, endOthers: els.sessionsEndOthers },
    api: app.api,
    describe: describeError,
  });
  // Logged out in another tab (its storage is ours): the session is over here too.
  window.addEventListener('storage', (ev) => {
    if ((ev.key === TOKEN_KEY || ev.key === null) && !ev.newValue && app.client) forgetSession('You logged out in another tab.');
  });
  els.newGroup.addEventListener('click', openGroupDialog);
  els.groupForm.addEventListener('submit', onGroupSubmit);
  els.addMember.addEventListener('click', openMemberDialog);
  els.showMembers.addEventListener('click', openMembersDialog);
  els.blockUser.addEventListener('click', toggleBlock);
  settingsDialog({
    els: { button: els.settingsBtn, dialog: els.settingsDialog, select: els.addPolicy, status: els.settingsStatus },
    api: app.api,
    describe: describeError,
  });
  els.membersMore.addEventListener('click', loadMembersPage);
  els.membersDialog.addEventListener('close', () => { app.members = null; });
  els.memberForm.addEventListener('submit', onMemberSubmit);
  els.leaveGroup.addEventListener('click', openLeaveDialog);
  els.leaveForm.addEventListener('submit', onLeaveSubmit);
  els.leaveDialog.addEventListener('close', () => {
    app.leaving = null;
    // Back to the button that opened it, when it is still there.
    if (!els.leaveGroup.hidden && document.activeElement === document.body) els.leaveGroup.focus();
  });
  els.convMore.addEventListener('click', () => loadMoreConversations({ fromButton: true }));
  els.convNav.addEventListener(
    'scroll',
    () => {
      const nav = els.convNav;
      if (nav.scrollTop + nav.clientHeight > nav.scrollHeight - LOAD_MORE_CONVS_PX) loadMoreConversations();
    },
    { passive: true },
  );
  els.search.addEventListener('input', onSearchInput);
  els.search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') clearSearch();
    if (ev.key === 'Enter') {
      // Enter opens the first person found.
      const first = els.searchList.querySelector('a[href]');
      if (first && !els.searchResults.hidden) {
        ev.preventDefault();
        first.click();
      }
    }
  });
  els.composer.addEventListener('submit', onSend);
  els.input.addEventListener('keydown', onComposerKey);
  els.input.addEventListener('input', onComposerInput);
  els.jump.addEventListener('click', () => {
    els.log.scrollTo({ top: els.log.scrollHeight, behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
    els.input.focus({ preventScroll: true });
  });
  els.bannerRetry.addEventListener('click', () => app.client && app.client.nudge());
  els.log.addEventListener(
    'scroll',
    () => {
      if (els.log.scrollTop < LOAD_OLDER_PX) loadOlder();
      if (nearBottom()) maybeMarkRead();
      updateJump();
    },
    { passive: true },
  );
  document.addEventListener('click', onDocumentClick);
  document.addEventListener('keydown', (ev) => {
    const inField = document.activeElement === els.search || (document.activeElement === els.input && els.input.value);
    if (ev.key === 'Escape' && app.current && !document.querySelector('dialog[open]') && !inField) {
      navigate('/');
    }
  });
  window.addEventListener('popstate', route);
  window.addEventListener('focus', maybeMarkRead);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      maybeMarkRead();
      if (app.client) app.client.nudge();
    }
  });
  window.addEventListener('online', () => app.client && app.client.nudge());
  // Re-render now and then so that typing indicators expire and relative day labels stay right.
  setInterval(scheduleRender, 30000);

  const s = loadSession();
  if (s) startSession(s.token, s.user);
  else showAuth('');
}

init();
