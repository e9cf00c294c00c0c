// app.js: Parley's web chat client. REST (/v1/...) for accounts, rooms and history;
// MQTT 5 over WebSocket (/mqtt, same origin) for everything live. No framework, no build.
//
// Stable element ids and attributes (the browser test relies on them):
//   #auth-view                      sign-up and log-in (hidden while logged in)
//   #signup-form #signup-username #signup-password #signup-email #signup-button
//   #login-form #login-username #login-password #login-button
//   #auth-error                     last sign-up / log-in error; data-code = the API's error code
//   #chat-view                      the chat (hidden while logged out)
//   #me                             my user name
//   #connection-status              data-state = connecting | online | offline
//   #logout-button
//   #push-button                    shown when the browser can do Web Push; data-state =
//                                   ready | asking | subscribing | on | denied | failed
//                                   (data-reason says why)
//   #room-list li[data-room=NAME]   one per room: data-unread = count, class "active" when open;
//                                   inside .room-name and .unread (the badge, empty at 0)
//   #new-room-form #new-room-name #new-room-title #new-room-button
//   #error                          last error of an action (create room, add member, post); data-code
//   #room-view[data-room=NAME]      the open room; #room-title
//   #member-list li[data-user=NAME][data-presence=online|offline|unknown]   .presence is the dot
//   #add-member-form #add-member-username #add-member-button   (shown to the room's owner)
//   #messages                       the scrolling box: #load-older (data-has-more) and #message-list
//   #message-list li[data-id=N][data-from=USER]   .from .ts .body, and .seen-by ("seen by bob, carol":
//                                                 under the newest message not their own that they read)
//   #message-list li.pending[data-ckey=K]         my post before its envelope comes back
//                                                 (class "failed" and data-reason when refused)
//   #typing                         "alice is typing" (empty when nobody is)
//   #composer-form #composer #send-button
// window.parleyApp = {state, debug: {dropConnection()}}: for debugging, and for the test to
// cut the WebSocket as a network failure would (no DISCONNECT).

import { MqttClient } from './mqtt.js';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, text) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const same = (a, b) => String(a).toLowerCase() === String(b).toLowerCase(); // user names ignore case
const randomHex = (bytes) => Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');

const TYPING_SHOWN_MS = 3000;     // "x is typing" lasts this long after the last signal
const TYPING_SEND_EVERY_MS = 2000;
const PAGE = 50;                  // history page when scrolling back
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;

/** One room as the client knows it. Ids are the room's sequence 1, 2, 3, ... */
class Room {
  constructor(r) {
    this.name = r.name;
    this.messages = new Map();  // id -> envelope (only once loaded)
    this.loaded = false;        // the newest page has been fetched
    this.contig = 0;            // every id from the loaded start up to this one is here
    this.oldest = null;         // the lowest id loaded
    this.hasMoreOlder = false;
    this.members = [];
    this.seen = new Map();      // lower(user) -> {user, up_to}: other members' read receipts
    this.typing = new Map();    // user -> time the indicator ends
    this.receiptSent = 0;
    this.update(r);
  }
  update(r) {
    this.title = r.title ?? this.title ?? '';
    this.owner = r.owner ?? this.owner;
    this.last_id = Math.max(this.last_id ?? 0, r.last_id ?? 0);
    if (r.unread !== undefined) this.unread = r.unread;
    this.unread ??= 0;
    if (r.members) this.members = r.members;
  }
  get maxId() { let m = 0; for (const id of this.messages.keys()) if (id > m) m = id; return m; }
}

const state = {
  token: null,
  user: null,
  session: 0,                // bumped at log-in/out: callbacks of an older session do nothing
  rooms: new Map(),          // name -> Room
  current: null,             // the open room's name
  presence: new Map(),       // lower(user) -> {user, status, ...}
  client: null,              // the connected MqttClient, or null
  connecting: null,          // the MqttClient waiting for its CONNACK
  conn: 'offline',
  retryDelay: 0,
  retryTimer: null,
  outbox: new Map(),         // ckey -> {room, body, failed?}: my posts until their envelope arrives
  lastTypingSent: 0,
};
window.parleyApp = {
  state,
  debug: { dropConnection() { state.client?.ws?.close(); } },
};

// --- REST ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) { super(message || code || `HTTP ${status}`); this.status = status; this.code = code; }
}

async function api(method, path, body, { auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth && state.token) headers.Authorization = `Bearer ${state.token}`;
  const session = state.session;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'The server cannot be reached');
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    if (res.status === 401 && auth && session === state.session && state.token) {
      signedOut('Your session has ended: please log in again.');
    }
    let message = data?.message || data?.error || `HTTP ${res.status}`;
    if (res.status === 429) message += ` (retry in ${res.headers.get('Retry-After') || 'a few'} s)`;
    throw new ApiError(res.status, data?.error, message);
  }
  return data;
}

const enc = encodeURIComponent;

function showError(target, err) {
  const e = $(target);
  e.textContent = err ? err.message : '';
  if (err?.code) e.dataset.code = err.code; else delete e.dataset.code;
}

// --- accounts ----------------------------------------------------------------------------------

async function signUp(ev) {
  ev.preventDefault();
  const username = $('#signup-username').value.trim();
  const password = $('#signup-password').value;
  const email = $('#signup-email').value.trim();
  showError('#auth-error', null);
  try {
    await api('POST', '/v1/users', email ? { username, password, email } : { username, password }, { auth: false });
    await logIn(username, password);
    $('#signup-form').reset();
  } catch (e) { showError('#auth-error', e); }
}

async function onLogIn(ev) {
  ev.preventDefault();
  showError('#auth-error', null);
  try {
    await logIn($('#login-username').value.trim(), $('#login-password').value);
    $('#login-form').reset();
  } catch (e) { showError('#auth-error', e); }
}

async function logIn(username, password) {
  const t = await api('POST', '/v1/tokens', { username, password }, { auth: false });
  state.token = t.token;
  localStorage.setItem('parley.token', t.token);
  await startSession();
}

/** With a token: who am I, then the chat. A refused token shows the log-in again. */
async function startSession() {
  const session = ++state.session;
  const me = await api('GET', '/v1/me');
  if (session !== state.session) return;
  state.user = me.username;
  $('#me').textContent = me.username;
  $('#auth-view').hidden = true;
  $('#chat-view').hidden = false;
  await refreshRooms();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && state.rooms.has(wanted)) openRoom(wanted);
  connect();
  offerPush();
}

// --- Web Push ----------------------------------------------------------------------------------

/** Where the browser supports it: register the service worker and offer the button. */
async function offerPush() {
  const button = $('#push-button');
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !window.isSecureContext) return;
  try {
    state.pushRegistration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    const existing = await state.pushRegistration.pushManager.getSubscription();
    const known = existing && localStorage.getItem('parley.push.' + state.user) === existing.endpoint;
    button.dataset.state = known ? 'on' : (Notification.permission === 'denied' ? 'denied' : 'ready');
    button.textContent = known ? 'Notifications on' : 'Notify me';
    button.hidden = false;
  } catch (e) {
    button.dataset.state = 'failed';
    button.dataset.reason = String(e.message || e);
  }
}

/** The button: permission, a push subscription with Parley's VAPID key, then POST /v1/devices. */
async function enablePush() {
  const button = $('#push-button');
  button.dataset.state = 'asking';
  try {
    if ((await Notification.requestPermission()) !== 'granted') {
      button.dataset.state = 'denied';
      return;
    }
    const { public_key } = await api('GET', '/v1/push/vapid', undefined, { auth: false });
    const registration = state.pushRegistration || await navigator.serviceWorker.ready;
    button.dataset.state = 'subscribing';
    // The browser asks its push service; one it cannot reach may never answer.
    const subscription = await Promise.race([
      registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64URLBytes(public_key) }),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no answer from the browser\'s push service')), 30000)),
    ]);
    const json = subscription.toJSON();
    await api('POST', '/v1/devices', { kind: 'webpush', endpoint: json.endpoint, keys: json.keys });
    localStorage.setItem('parley.push.' + state.user, json.endpoint);
    button.dataset.state = 'on';
    button.textContent = 'Notifications on';
  } catch (e) {
    button.dataset.state = 'failed';
    button.dataset.reason = String(e.message || e);
  }
}

function base64URLBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - text.length % 4) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function logOut() {
  try { await api('DELETE', '/v1/tokens/current'); } catch { /* signed out here whatever the server says */ }
  signedOut('');
}

/** Forget the session: close the connection, clear the state and show the log-in. */
function signedOut(message) {
  state.session++;
  for (const c of [state.client, state.connecting]) if (c) c.end();
  state.client = state.connecting = null;
  clearTimeout(state.retryTimer);
  Object.assign(state, { token: null, user: null, current: null, retryDelay: 0, conn: 'offline' });
  state.rooms.clear();
  state.presence.clear();
  state.outbox.clear();
  localStorage.removeItem('parley.token');
  history.replaceState(null, '', location.pathname);
  $('#chat-view').hidden = true;
  $('#auth-view').hidden = false;
  $('#auth-error').textContent = message;
  renderAll();
}

// --- rooms -------------------------------------------------------------------------------------

let refreshing = null;
let refreshAgain = false;

/** GET /v1/rooms and merge: new rooms appear, gone ones go, counts and last ids update. */
async function refreshRooms() {
  if (refreshing) { refreshAgain = true; return refreshing; }
  const session = state.session;
  refreshing = (async () => {
    try {
      const list = await api('GET', '/v1/rooms');
      if (session !== state.session) return;
      const names = new Set(list.map((r) => r.name));
      let added = false;
      for (const r of list) {
        const room = state.rooms.get(r.name);
        if (room) room.update(r); else { state.rooms.set(r.name, new Room(r)); added = true; }
      }
      for (const name of [...state.rooms.keys()]) {
        if (!names.has(name)) {
          state.rooms.delete(name);
          if (state.current === name) state.current = null;
        }
      }
      if (added) resubscribePresence();
      for (const room of state.rooms.values()) if (room.loaded && room.last_id > room.contig) fillGap(room);
      renderAll();
    } catch (e) {
      if (e.status !== 401) showError('#error', e);
    }
  })();
  try { await refreshing; } finally {
    refreshing = null;
    if (refreshAgain) { refreshAgain = false; refreshRooms(); }
  }
}

async function createRoom(ev) {
  ev.preventDefault();
  const name = $('#new-room-name').value.trim();
  const title = $('#new-room-title').value.trim();
  showError('#error', null);
  try {
    const r = await api('POST', '/v1/rooms', title ? { name, title } : { name });
    if (!state.rooms.has(r.name)) state.rooms.set(r.name, new Room({ ...r, unread: 0 }));
    $('#new-room-form').reset();
    openRoom(r.name);
  } catch (e) { showError('#error', e); }
}

async function addMember(ev) {
  ev.preventDefault();
  const room = state.rooms.get(state.current);
  if (!room) return;
  const username = $('#add-member-username').value.trim();
  showError('#error', null);
  try {
    await api('POST', `/v1/rooms/${enc(room.name)}/members`, { username });
    $('#add-member-form').reset();
    await loadMembers(room);
    resubscribePresence();  // a new room-mate: their retained presence is mine to see now
  } catch (e) { showError('#error', e); }
}

async function loadMembers(room) {
  try {
    const r = await api('GET', `/v1/rooms/${enc(room.name)}`);
    room.update(r);
    if (room.name === state.current) renderRoomHeader();
  } catch (e) {
    if (e.status === 403 || e.status === 404) refreshRooms(); // no longer mine
  }
}

function openRoom(name) {
  const room = state.rooms.get(name);
  if (!room) return;
  state.current = name;
  state.lastTypingSent = 0;
  history.replaceState(null, '', `#${enc(name)}`);
  renderAll({ toBottom: true });
  loadMembers(room);
  if (!room.loaded) loadLatest(room); else markRead(room);
  $('#composer').focus();
}

// --- history -----------------------------------------------------------------------------------

function addMessages(room, list) {
  for (const m of list) {
    if (!Number.isInteger(m.id)) continue;
    room.messages.set(m.id, m);
    if (room.oldest === null || m.id < room.oldest) room.oldest = m.id;
    room.last_id = Math.max(room.last_id, m.id);
    if (m.ckey && same(m.from, state.user)) state.outbox.delete(m.ckey);
  }
  while (room.messages.has(room.contig + 1)) room.contig++;
}

/** The newest page of a room (live messages arriving meanwhile are kept). */
async function loadLatest(room) {
  if (room.loading) return;
  room.loading = true;
  try {
    const page = await api('GET', `/v1/rooms/${enc(room.name)}/messages?limit=${PAGE}`);
    addMessages(room, page.messages);
    const top = page.messages.at(-1)?.id ?? 0;
    room.contig = Math.max(room.contig, top);
    while (room.messages.has(room.contig + 1)) room.contig++;
    room.hasMoreOlder = page.has_more;
    room.loaded = true;
    if (room.maxId > room.contig || room.last_id > room.contig) fillGap(room);
    if (room.name === state.current) { renderMessages({ toBottom: true }); markRead(room); }
  } catch (e) {
    showError('#error', e);
  } finally {
    room.loading = false;
  }
}

/** Scrolling back: the page before the oldest message shown. */
async function loadOlder(room) {
  if (!room || !room.loaded || !room.hasMoreOlder || room.loadingOlder) return;
  room.loadingOlder = true;
  $('#message-list').dataset.loading = 'true';
  try {
    const page = await api('GET', `/v1/rooms/${enc(room.name)}/messages?before=${room.oldest}&limit=${PAGE}`);
    addMessages(room, page.messages);
    room.hasMoreOlder = page.has_more && page.messages.length > 0;
    if (room.name === state.current) renderMessages({ keepBottomOffset: true });
  } catch (e) {
    showError('#error', e);
  } finally {
    room.loadingOlder = false;
    delete $('#message-list').dataset.loading;
  }
}

/**
 * Fetches what is missing after the last contiguous id (`after=`), page by page: after a
 * reconnect, or when a live message's id shows a gap. One fill per room at a time.
 */
async function fillGap(room) {
  if (room.filling) { room.fillAgain = true; return; }
  room.filling = true;
  const session = state.session;
  try {
    for (let i = 0; i < 1000; i++) {
      const page = await api('GET', `/v1/rooms/${enc(room.name)}/messages?after=${room.contig}&limit=500`);
      if (session !== state.session) return;
      const before = room.contig;
      addMessages(room, page.messages);
      if (!page.has_more || room.contig === before) break;
    }
    if (room.name === state.current) { renderMessages(); markRead(room); }
  } catch (e) {
    if (e.status !== 401) showError('#error', e);
  } finally {
    room.filling = false;
    if (room.fillAgain) { room.fillAgain = false; fillGap(room); }
  }
}

// --- live: MQTT over WebSocket --------------------------------------------------------------

function setConn(s, detail = '') {
  state.conn = s;
  const e = $('#connection-status');
  e.dataset.state = s;
  e.title = detail ? `${s}: ${detail}` : s;
}

function connect() {
  const session = state.session;
  if (!state.token || state.client || state.connecting) return;
  clearTimeout(state.retryTimer);
  setConn('connecting');
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/mqtt`;
  const c = new MqttClient({ url, username: state.user, password: state.token, clientId: `web-${randomHex(8)}`, keepAlive: 30 });
  c.onmessage = (p) => { if (session === state.session) onPublish(p); };
  state.connecting = c;
  c.onclose = (err) => {
    if (session !== state.session) return;
    if (state.connecting === c) state.connecting = null;
    if (state.client === c) state.client = null;
    // A connection that lasted starts the back-off again; one dropped at once keeps doubling it.
    if (c.onlineSince && Date.now() - c.onlineSince > 10000) state.retryDelay = 0;
    setConn('offline', err.message);
    retryLater();
  };
  c.connect().then(async () => {
    if (session !== state.session) { c.end(); return; }
    state.connecting = null;
    state.client = c;
    const me = state.user;
    const codes = await c.subscribe([
      { topic: 'rooms/+/messages', qos: 1 },
      { topic: 'rooms/+/receipts', qos: 1 },
      { topic: 'rooms/+/events', qos: 1 },
      { topic: 'rooms/+/typing', qos: 0 },
      { topic: `users/${me}/unread`, qos: 1 },
      { topic: 'presence/+', qos: 1 },
    ]);
    if (codes.some((x) => x >= 0x80)) console.warn('parley: some subscriptions refused', codes);
    c.onlineSince = Date.now();
    setConn('online');
    // Whatever happened while away: room list and counts, missed messages (refreshRooms
    // fills each loaded room's gap up to its last id), unsent posts, the receipt.
    for (const [ckey, item] of state.outbox) if (!item.failed) sendPost(ckey, item);
    await refreshRooms();
    markRead(state.rooms.get(state.current));
  }).catch(async (err) => {
    if (session !== state.session) return;
    if (err.code === 0x86 || err.code === 0x87) {
      // Refused credentials: is the token still good? (api() signs out on a 401.)
      try { await api('GET', '/v1/me'); } catch { return; }
    }
    // onclose has scheduled the retry.
  });
}

/** Reconnects after a back-off: 0.5 s doubling to 15 s, with jitter; at once when back online. */
function retryLater() {
  if (!state.token) return;
  clearTimeout(state.retryTimer);
  state.retryDelay = state.retryDelay ? Math.min(state.retryDelay * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
  const delay = state.retryDelay * (0.8 + 0.4 * Math.random());
  state.retryTimer = setTimeout(connect, delay);
}

window.addEventListener('online', () => { if (state.token && !state.client) { state.retryDelay = 0; connect(); } });

/** Re-subscribing delivers the retained presence of people who became room-mates since. */
let presenceTimer = null;
function resubscribePresence() {
  clearTimeout(presenceTimer);
  presenceTimer = setTimeout(() => {
    state.client?.subscribe([{ topic: 'presence/+', qos: 1, retainHandling: 0 }]).catch(() => {});
  }, 100);
}

const decoder = new TextDecoder();

function onPublish(p) {
  let data;
  try { data = JSON.parse(decoder.decode(p.payload)); } catch { return; }
  const [kind, name, sub] = p.topic.split('/');
  if (kind === 'rooms') {
    const room = state.rooms.get(name);
    if (!room) { refreshRooms(); return; }   // a room I was just added to
    if (sub === 'messages') onPost(room, data);
    else if (sub === 'typing') onTyping(room, data);
    else if (sub === 'receipts') onReceipt(room, data);
    else if (sub === 'events') onEvent(room, data);
  } else if (kind === 'users' && sub === 'unread') {
    onUnread(data);
  } else if (kind === 'presence') {
    state.presence.set(name.toLowerCase(), { user: data.user ?? name, status: data.status, ...data });
    renderRoomHeader();
  }
}

function onPost(room, m) {
  room.typing.delete(m.from);
  if (!room.loaded) {
    room.last_id = Math.max(room.last_id, m.id);
    if (room.loading) addMessages(room, [m]);   // kept for when the page arrives
    if (!same(m.from, state.user)) room.unread++;
    renderRoomList();
    return;
  }
  const gap = m.id > room.contig + 1;
  addMessages(room, [m]);
  if (gap) fillGap(room);
  if (room.name === state.current) {
    renderMessages();
    renderTyping();
    markRead(room);
  } else if (!same(m.from, state.user)) {
    room.unread++;   // the broker's retained count follows within a second
    renderRoomList();
  }
}

function onTyping(room, t) {
  if (!t.from || same(t.from, state.user)) return;
  room.typing.set(t.from, Date.now() + TYPING_SHOWN_MS);
  renderTyping();
  setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
}

function onReceipt(room, r) {
  if (!r.from || !Number.isInteger(r.up_to) || same(r.from, state.user)) return;
  const key = r.from.toLowerCase();
  const prev = room.seen.get(key);
  if (!prev || r.up_to > prev.up_to) room.seen.set(key, { user: r.from, up_to: r.up_to });
  if (room.name === state.current) renderMessages();
}

function onEvent(room, ev) {
  // join, leave, kick, room_updated, room_deleted: the room list and members follow.
  refreshRooms();
  if (room.name === state.current) loadMembers(room);
  if (ev.type === 'join') resubscribePresence();
}

function onUnread(counts) {
  if (!counts || typeof counts !== 'object') return;
  let unknown = false;
  for (const [name, n] of Object.entries(counts)) {
    const room = state.rooms.get(name);
    if (room) room.unread = n; else unknown = true;
  }
  if (unknown || Object.keys(counts).length !== state.rooms.size) refreshRooms();
  renderRoomList();
}

// --- posting, typing, receipts -------------------------------------------------------------

function onSubmit(ev) {
  ev.preventDefault();
  const room = state.rooms.get(state.current);
  const body = $('#composer').value;
  if (!room || !body.trim()) return;
  const ckey = `w${randomHex(12)}`;
  const item = { room: room.name, body };
  state.outbox.set(ckey, item);
  state.lastTypingSent = 0;   // the next keystroke is a new "typing"
  $('#composer').value = '';
  renderMessages({ toBottom: true });
  sendPost(ckey, item);
}

/** QoS 1 with the client key: a repeat after a reconnect makes no second message. */
function sendPost(ckey, item) {
  const c = state.client;
  if (!c) return;   // sent when the connection is back
  c.publish(`rooms/${item.room}/messages`, JSON.stringify({ body: item.body, ckey }), { qos: 1 }).then((code) => {
    if (code >= 0x80 && state.outbox.has(ckey)) {
      item.failed = code === 0x96 ? 'too many messages: slow down' : code === 0x87 ? 'not allowed' :
        code === 0x99 ? 'message refused (size or format)' : `refused (0x${code.toString(16)})`;
      showError('#error', new ApiError(0, `puback_0x${code.toString(16)}`, `Not sent: ${item.failed}`));
      renderMessages();
    }
  }).catch(() => { /* connection lost: sent again after the reconnect */ });
}

function onComposerInput() {
  const c = state.client;
  if (!c || !state.current || !$('#composer').value) return;
  const now = Date.now();
  if (now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
  state.lastTypingSent = now;
  c.publish(`rooms/${state.current}/typing`, '{}', { qos: 0 }).catch(() => {});
}

/** A receipt for what is shown of the open room, when the page is visible. */
function markRead(room) {
  if (!room || room.name !== state.current || !room.loaded || document.visibilityState === 'hidden') return;
  const upTo = room.contig;
  room.unread = 0;
  renderRoomList();
  const c = state.client;
  if (!c || upTo <= room.receiptSent) return;
  room.receiptSent = upTo;
  c.publish(`rooms/${room.name}/receipts`, JSON.stringify({ up_to: upTo }), { qos: 1 }).then((code) => {
    if (code >= 0x80 && room.receiptSent === upTo) room.receiptSent = 0;   // shed: try again later
  }).catch(() => { if (room.receiptSent === upTo) room.receiptSent = 0; });
}

document.addEventListener('visibilitychange', () => markRead(state.rooms.get(state.current)));

// --- rendering -------------------------------------------------------------------------------

function renderAll(opts) {
  renderRoomList();
  renderRoomHeader();
  renderMessages(opts);
  renderTyping();
}

/** The room list, updated in place (an element being clicked is not replaced under the pointer). */
function renderRoomList() {
  const ul = $('#room-list');
  const old = new Map([...ul.children].map((li) => [li.dataset.room, li]));
  const rooms = [...state.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
  rooms.forEach((r, i) => {
    let li = old.get(r.name);
    old.delete(r.name);
    if (!li) {
      li = el('li', { 'data-room': r.name });
      li.append(el('span', { class: 'room-name' }, `#${r.name}`), el('span', { class: 'unread' }));
      li.addEventListener('click', () => openRoom(r.name));
    }
    const unread = r.name === state.current ? 0 : r.unread;
    li.dataset.unread = String(unread);
    li.classList.toggle('active', r.name === state.current);
    li.querySelector('.room-name').title = r.title || r.name;
    li.querySelector('.unread').textContent = unread > 0 ? String(unread) : '';
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] ?? null);
  });
  for (const li of old.values()) li.remove();
}

function renderRoomHeader() {
  const room = state.rooms.get(state.current);
  $('#room-view').dataset.room = room ? room.name : '';
  $('#room-title').textContent = room ? `#${room.name}${room.title ? ' · ' + room.title : ''}` : 'Pick or create a room';
  $('#add-member-form').hidden = !room || !same(room.owner, state.user);
  $('#composer').disabled = $('#send-button').disabled = !room;
  const ul = $('#member-list');
  ul.replaceChildren();
  for (const name of room ? room.members : []) {
    const p = state.presence.get(name.toLowerCase());
    const status = p?.status === 'online' ? 'online' : p?.status === 'offline' ? 'offline' : 'unknown';
    const li = el('li', { 'data-user': name, 'data-presence': status,
      title: status === 'offline' && p.last_seen ? `last seen ${new Date(p.last_seen).toLocaleString()}` : status });
    li.append(el('span', { class: 'presence' }), el('span', { class: 'member-name' }, name));
    ul.append(li);
  }
}

function formatTime(ts) {
  const d = new Date(ts);
  return isNaN(d) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * Rebuilds the open room's list. Stays at the bottom when it was there (or toBottom);
 * keepBottomOffset: older messages were put on top, the view must not jump.
 */
function renderMessages({ toBottom = false, keepBottomOffset = false } = {}) {
  const box = $('#messages');
  const ul = $('#message-list');
  const room = state.rooms.get(state.current);
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const fromBottom = box.scrollHeight - box.scrollTop;
  ul.replaceChildren();
  const older = $('#load-older');
  older.hidden = !room?.hasMoreOlder;
  older.dataset.hasMore = String(!!room?.hasMoreOlder);
  if (!room) return;

  // "seen by": each other member under the newest message of someone else that their
  // receipt covers (their own posts they have seen anyway).
  const ids = [...room.messages.keys()].sort((a, b) => a - b);
  const seenAt = new Map();
  for (const { user, up_to } of room.seen.values()) {
    let at = null;
    for (const id of ids) {
      if (id > up_to) break;
      if (!same(room.messages.get(id).from, user)) at = id;
    }
    if (at !== null) seenAt.set(at, [...(seenAt.get(at) ?? []), user]);
  }
  for (const id of ids) {
    const m = room.messages.get(id);
    const li = el('li', { 'data-id': String(id), 'data-from': m.from });
    if (same(m.from, state.user)) li.classList.add('mine');
    li.append(el('span', { class: 'from' }, m.from), el('time', { class: 'ts', datetime: m.ts }, formatTime(m.ts)),
      el('div', { class: 'body' }, m.body));
    const seen = seenAt.get(id);
    if (seen) li.append(el('div', { class: 'seen-by' }, `seen by ${seen.sort().join(', ')}`));
    ul.append(li);
  }
  for (const [ckey, item] of state.outbox) {
    if (item.room !== room.name) continue;
    const li = el('li', { 'data-ckey': ckey, class: 'pending mine' });
    if (item.failed) { li.classList.add('failed'); li.dataset.reason = item.failed; }
    li.append(el('span', { class: 'from' }, state.user), el('span', { class: 'ts' }, item.failed ? 'not sent' : 'sending…'),
      el('div', { class: 'body' }, item.body));
    ul.append(li);
  }
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
  else if (keepBottomOffset) box.scrollTop = box.scrollHeight - fromBottom;
}

function renderTyping() {
  const room = state.rooms.get(state.current);
  const now = Date.now();
  const who = [];
  if (room) {
    for (const [user, until] of room.typing) {
      if (until > now) who.push(user); else room.typing.delete(user);
    }
  }
  $('#typing').textContent = who.length === 0 ? '' : who.length === 1 ? `${who[0]} is typing` :
    who.length === 2 ? `${who[0]} and ${who[1]} are typing` : 'several people are typing';
}

// --- wiring -----------------------------------------------------------------------------------

$('#signup-form').addEventListener('submit', signUp);
$('#login-form').addEventListener('submit', onLogIn);
$('#logout-button').addEventListener('click', logOut);
$('#push-button').addEventListener('click', enablePush);
$('#new-room-form').addEventListener('submit', createRoom);
$('#add-member-form').addEventListener('submit', addMember);
$('#composer-form').addEventListener('submit', onSubmit);
$('#composer').addEventListener('input', onComposerInput);
$('#load-older').addEventListener('click', () => loadOlder(state.rooms.get(state.current)));
$('#messages').addEventListener('scroll', () => {
  if ($('#messages').scrollTop < 60) loadOlder(state.rooms.get(state.current));
});

state.token = localStorage.getItem('parley.token');
if (state.token) {
  startSession().catch((e) => { if (state.token) signedOut(e.status === 401 ? '' : e.message); });
} else {
  $('#auth-view').hidden = false;
}
