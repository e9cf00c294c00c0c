// sw.js: the web client's service worker, for Web Push only. Parley sends a push
// (RFC 8291 encrypted, VAPID signed) to a member who did not see a message; the
// browser decrypts it and hands this worker the JSON:
//   {"title": "alice in general", "body": "...", "room": "general", "id": 5, "from": "alice", "ts": "...", "tag": "ntf_12"}
// It shows one notification per message; a click opens (or focuses) the client on that room.

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = { body: event.data ? event.data.text() : '' }; }
  const title = data.title || 'New message';
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || '',
    tag: data.tag || undefined,
    data: { room: data.room || '' },
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = '/#' + encodeURIComponent(event.notification.data?.room || '');
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).pathname === '/') { await w.navigate(url).catch(() => {}); return w.focus(); }
    }
    return self.clients.openWindow(url);
  })());
});
