// Tests of the web client's MQTT 5 codec and client (Sources/Gateway/Web/mqtt.js).
//
//   node --test Tests/web/
//
// The packets are checked against MQTT.js's own codec, mqtt-packet (Debian's node-mqtt
// brings it to /usr/share/nodejs; NODE_PATH may point elsewhere): what mqtt.js encodes
// must parse there to the same fields, and what mqtt-packet generates must decode here.
// MqttClient runs against a fake WebSocket that records what is sent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = readFileSync(path.join(here, '../../Sources/Gateway/Web/mqtt.js'), 'utf8');
// mqtt.js is an ES module for the browser; without a package.json saying "type":
// "module" node would read a .js file as CommonJS, so it is imported from its text.
const m = await import('data:text/javascript;base64,' + Buffer.from(source).toString('base64'));

// Debian's node does not search /usr/share/nodejs, where mqtt-packet and its own
// dependencies (bl, debug, ...) live: add it to the CommonJS search path.
const require = createRequire(import.meta.url);
const Module = require('node:module');
process.env.NODE_PATH = [process.env.NODE_PATH, '/usr/share/nodejs'].filter(Boolean).join(path.delimiter);
Module._initPaths();
const mp = require('mqtt-packet');

/** The packets mqtt-packet's parser reads from `bytes` (protocol 5). */
function parseWithMqttPacket(bytes) {
  const parser = mp.parser({ protocolVersion: 5 });
  const out = [];
  const errors = [];
  parser.on('packet', (p) => out.push(p));
  parser.on('error', (e) => errors.push(e));
  parser.parse(Buffer.from(bytes));
  assert.deepEqual(errors, []);
  return out;
}

const generate = (p) => new Uint8Array(mp.generate(p, { protocolVersion: 5 }));
const decodeOne = (bytes) => {
  const packets = new m.PacketReader().push(bytes);
  assert.equal(packets.length, 1);
  return m.decodePacket(packets[0]);
};

test('variable byte integer: the boundaries of MQTT 5 section 1.5.5', () => {
  const cases = [
    [0, [0x00]], [127, [0x7f]], [128, [0x80, 0x01]], [16383, [0xff, 0x7f]],
    [16384, [0x80, 0x80, 0x01]], [2097151, [0xff, 0xff, 0x7f]],
    [2097152, [0x80, 0x80, 0x80, 0x01]], [268435455, [0xff, 0xff, 0xff, 0x7f]],
  ];
  for (const [n, bytes] of cases) {
    assert.deepEqual(m.encodeVarInt(n), bytes, `encode ${n}`);
    assert.deepEqual(m.decodeVarInt(Uint8Array.from([0x55, ...bytes, 0x66]), 1), { value: n, length: bytes.length });
    // Every proper prefix is "incomplete", not a wrong value.
    for (let k = 0; k < bytes.length; k++) assert.equal(m.decodeVarInt(Uint8Array.from(bytes.slice(0, k))), null);
  }
  assert.throws(() => m.encodeVarInt(268435456), RangeError);
  assert.throws(() => m.encodeVarInt(-1), RangeError);
  assert.throws(() => m.encodeVarInt(1.5), RangeError);
  assert.throws(() => m.decodeVarInt(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x01])), m.ProtocolError);
});

test('CONNECT parses in mqtt-packet as sent: v5, clean start, keep alive, user name and token', () => {
  const bytes = m.encodeConnect({ clientId: 'web-1', username: 'ålice', password: 'pt_tökén', keepAlive: 30,
    properties: { sessionExpiryInterval: 0, receiveMaximum: 20 } });
  const [p] = parseWithMqttPacket(bytes);
  assert.equal(p.cmd, 'connect');
  assert.equal(p.protocolId, 'MQTT');
  assert.equal(p.protocolVersion, 5);
  assert.equal(p.clean, true);
  assert.equal(p.keepalive, 30);
  assert.equal(p.clientId, 'web-1');
  assert.equal(p.username, 'ålice');
  assert.equal(Buffer.from(p.password).toString('utf8'), 'pt_tökén');
  assert.equal(p.properties.receiveMaximum, 20);
  assert.equal(p.properties.sessionExpiryInterval, 0);
  assert.equal(p.will, undefined);
  // And byte for byte what mqtt-packet makes of the same fields.
  assert.deepEqual(bytes, generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 30,
    clientId: 'web-1', username: 'ålice', password: Buffer.from('pt_tökén'),
    properties: { sessionExpiryInterval: 0, receiveMaximum: 20 } }));
});

test('PUBLISH QoS 0 and 1 parse in mqtt-packet: topic, packet id, payload, flags', () => {
  const body = JSON.stringify({ body: 'héllo 👋', ckey: 'w-1' });
  const q1 = m.encodePublish({ topic: 'rooms/général/messages', payload: body, qos: 1, packetId: 513 });
  const q0 = m.encodePublish({ topic: 'rooms/a/typing', payload: '{}', qos: 0, retain: true });
  const [a, b] = parseWithMqttPacket([...q1, ...q0]);
  assert.deepEqual([a.cmd, a.topic, a.qos, a.messageId, a.retain, a.dup], ['publish', 'rooms/général/messages', 1, 513, false, false]);
  assert.equal(a.payload.toString('utf8'), body);
  assert.deepEqual([b.topic, b.qos, b.retain, b.payload.toString()], ['rooms/a/typing', 0, true, '{}']);
  assert.deepEqual(q1, generate({ cmd: 'publish', topic: 'rooms/général/messages', qos: 1, messageId: 513,
    payload: Buffer.from(body), retain: false, dup: false }));
  // A payload long enough for a 3-byte remaining length.
  const big = 'x'.repeat(20000);
  const [c] = parseWithMqttPacket(m.encodePublish({ topic: 't', payload: big, qos: 1, packetId: 7, dup: true }));
  assert.equal(c.payload.length, 20000);
  assert.equal(c.dup, true);
  assert.throws(() => m.encodePublish({ topic: 't', payload: 'x', qos: 1 }), RangeError);
  assert.throws(() => m.encodePublish({ topic: 't', payload: 'x', qos: 2, packetId: 1 }), RangeError);
});

test('SUBSCRIBE, PUBACK, PINGREQ, DISCONNECT parse in mqtt-packet', () => {
  const sub = m.encodeSubscribe(9, [{ topic: 'rooms/+/messages', qos: 1 }, { topic: 'presence/+', qos: 0, noLocal: true, retainHandling: 1 }]);
  const [s] = parseWithMqttPacket(sub);
  assert.equal(s.cmd, 'subscribe');
  assert.equal(s.messageId, 9);
  assert.deepEqual(s.subscriptions.map((x) => [x.topic, x.qos, x.nl, x.rh]), [['rooms/+/messages', 1, false, 0], ['presence/+', 0, true, 1]]);
  const [a] = parseWithMqttPacket(m.encodePuback(300));
  assert.deepEqual([a.cmd, a.messageId], ['puback', 300]);
  const [a2] = parseWithMqttPacket(m.encodePuback(301, 0x80));
  assert.deepEqual([a2.messageId, a2.reasonCode], [301, 0x80]);
  assert.deepEqual(m.encodePingreq(), Uint8Array.from([0xc0, 0x00]));
  assert.equal(parseWithMqttPacket(m.encodePingreq())[0].cmd, 'pingreq');
  assert.deepEqual(m.encodeDisconnect(), Uint8Array.from([0xe0, 0x00]));
  const [d] = parseWithMqttPacket(m.encodeDisconnect(0x81));
  assert.deepEqual([d.cmd, d.reasonCode], ['disconnect', 0x81]);
});

test('what mqtt-packet generates decodes here: CONNACK, PUBLISH with properties, PUBACK, SUBACK, PINGRESP, DISCONNECT', () => {
  const ca = decodeOne(generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0,
    properties: { assignedClientIdentifier: 'auto-1', serverKeepAlive: 20, receiveMaximum: 10, topicAliasMaximum: 0,
      userProperties: { a: 'b' } } }));
  assert.equal(ca.type, 'connack');
  assert.equal(ca.reasonCode, 0);
  assert.equal(ca.sessionPresent, false);
  assert.deepEqual([ca.properties.assignedClientIdentifier, ca.properties.serverKeepAlive, ca.properties.receiveMaximum],
    ['auto-1', 20, 10]);
  assert.deepEqual(ca.properties.userProperty, [['a', 'b']]);
  assert.equal(decodeOne(generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0x86 })).reasonCode, 0x86);

  const env = JSON.stringify({ id: 17, room: 'general', from: 'alice', ts: '2026-12-01T20:15:00.123Z', body: 'hi ✓' });
  const pub = decodeOne(generate({ cmd: 'publish', topic: 'rooms/general/messages', qos: 1, messageId: 42, retain: true,
    dup: false, payload: Buffer.from(env),
    properties: { userProperties: { 'parley-id': '17', 'parley-from': 'alice' }, subscriptionIdentifier: 5,
      payloadFormatIndicator: true, messageExpiryInterval: 60, contentType: 'application/json' } }));
  assert.deepEqual([pub.type, pub.topic, pub.qos, pub.packetId, pub.retain], ['publish', 'rooms/general/messages', 1, 42, true]);
  assert.equal(new TextDecoder().decode(pub.payload), env);
  assert.deepEqual(pub.properties.userProperty, [['parley-id', '17'], ['parley-from', 'alice']]);
  assert.deepEqual(pub.properties.subscriptionIdentifier, [5]);
  assert.equal(pub.properties.messageExpiryInterval, 60);
  assert.equal(pub.properties.contentType, 'application/json');

  const q0 = decodeOne(generate({ cmd: 'publish', topic: 'presence/bob', qos: 0, payload: Buffer.from('{}') }));
  assert.equal(q0.packetId, undefined);
  assert.equal(q0.qos, 0);

  const pa = decodeOne(generate({ cmd: 'puback', messageId: 3, reasonCode: 0x96, properties: { reasonString: 'slow down' } }));
  assert.deepEqual([pa.type, pa.packetId, pa.reasonCode], ['puback', 3, 0x96]);
  const pa0 = decodeOne(generate({ cmd: 'puback', messageId: 4 }));
  assert.deepEqual([pa0.packetId, pa0.reasonCode], [4, 0]);

  const sa = decodeOne(generate({ cmd: 'suback', messageId: 8, granted: [1, 0, 0x87] }));
  assert.deepEqual([sa.type, sa.packetId, sa.reasonCodes], ['suback', 8, [1, 0, 0x87]]);

  assert.equal(decodeOne(generate({ cmd: 'pingresp' })).type, 'pingresp');
  const d = decodeOne(generate({ cmd: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'taken over' } }));
  assert.deepEqual([d.type, d.reasonCode, d.properties.reasonString], ['disconnect', 0x8e, 'taken over']);
});

test('PacketReader: packets split at every byte, several in one chunk, a large one in pieces', () => {
  const a = m.encodePublish({ topic: 'x/y', payload: 'one', qos: 1, packetId: 1 });
  const big = m.encodePublish({ topic: 'x/z', payload: 'é'.repeat(10000), qos: 0 });
  const b = generate({ cmd: 'pingresp' });
  const stream = Uint8Array.from([...a, ...big, ...b]);

  const all = new m.PacketReader().push(stream);
  assert.deepEqual(all.map((p) => p.type), [3, 3, 13]);

  const reader = new m.PacketReader();
  const got = [];
  for (const byte of stream) got.push(...reader.push(Uint8Array.of(byte)));
  assert.deepEqual(got.map((p) => m.decodePacket(p).type), ['publish', 'publish', 'pingresp']);
  assert.equal(new TextDecoder().decode(m.decodePacket(got[1]).payload), 'é'.repeat(10000));

  // Chunks that end inside the remaining length and inside the body.
  const r2 = new m.PacketReader();
  assert.deepEqual(r2.push(big.subarray(0, 2)), []);
  assert.deepEqual(r2.push(big.subarray(2, 500)), []);
  const [one] = r2.push(Uint8Array.from([...big.subarray(500), ...a.subarray(0, 3)]));
  assert.equal(m.decodePacket(one).topic, 'x/z');
  const [two] = r2.push(a.subarray(3));
  assert.equal(new TextDecoder().decode(m.decodePacket(two).payload), 'one');
  assert.equal(r2.buffer.length, 0);

  assert.throws(() => new m.PacketReader(100).push(big), m.ProtocolError);
});

test('decodePacket refuses malformed packets', () => {
  const bad = (type, flags, body) => assert.throws(() => m.decodePacket({ type, flags, body: Uint8Array.from(body) }), m.ProtocolError);
  bad(2, 0, [0x02, 0x00, 0x00]);                     // CONNACK with reserved flag bits
  bad(2, 1, [0x00, 0x00, 0x00]);                     // CONNACK with fixed-header flags
  bad(3, 0, [0x00, 0x02, 0xc3, 0x28, 0x00]);         // topic that is not UTF-8
  bad(3, 2, [0x00, 0x01, 0x74, 0x00, 0x00, 0x00]);   // QoS 1 with packet id 0
  bad(3, 6, [0x00, 0x01, 0x74, 0x00, 0x01, 0x00]);   // QoS 3
  bad(3, 0, [0x00, 0x01, 0x74, 0x05, 0x01, 0x01]);   // properties longer than the packet
  bad(3, 0, [0x00, 0x01, 0x74, 0x01, 0x23, 0x00, 0x05]); // a property running past the properties' length
  bad(3, 0, [0x00, 0x01, 0x74, 0x02, 0x7f, 0x00]);   // unknown property id
  bad(3, 0, [0x00, 0x01, 0x74, 0x04, 0x01, 0x00, 0x01, 0x01]); // payload format indicator twice
  bad(9, 0, [0x00, 0x01, 0x00]);                     // SUBACK without reason codes
  bad(13, 0, [0x00]);                                // PINGRESP with a body
  bad(4, 0, [0x00]);                                 // PUBACK too short
  bad(1, 0, []);                                     // CONNECT from a server
});

// --- MqttClient against a fake WebSocket ----------------------------------------------------

class FakeSocket {
  static last = null;
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.sent = [];
    this.closedByClient = false;
    FakeSocket.last = this;
    setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0);
  }
  send(bytes) { this.sent.push(...m.PacketReader.prototype.push.call(this.reader ??= new m.PacketReader(), bytes)); }
  close() { this.closedByClient = true; this.readyState = 3; }
  /** The server sends these bytes as one WebSocket message. */
  deliver(bytes) { this.onmessage?.({ data: Uint8Array.from(bytes).buffer }); }
  dropByPeer() { this.readyState = 3; this.onclose?.({ code: 1006, reason: '' }); }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

async function connected(opts = {}, connack = { cmd: 'connack', sessionPresent: false, reasonCode: 0 }) {
  const c = new m.MqttClient({ url: 'ws://127.0.0.1:1/mqtt', username: 'alice', password: 'pt_x', WebSocket: FakeSocket, ...opts });
  const done = c.connect();
  await tick();
  const ws = FakeSocket.last;
  const bytes = generate(connack);
  ws.deliver(bytes.subarray(0, 2));   // the CONNACK in two WebSocket messages
  ws.deliver(bytes.subarray(2));
  return { c, ws, connack: await done };
}

test('MqttClient connects with subprotocol mqtt, user name and token, and resolves on CONNACK', async () => {
  const { c, ws, connack } = await connected({}, { cmd: 'connack', sessionPresent: false, reasonCode: 0,
    properties: { assignedClientIdentifier: 'given', serverKeepAlive: 15 } });
  assert.deepEqual(ws.protocols, ['mqtt']);
  assert.equal(ws.sent[0].type, m.PacketType.CONNECT);
  const sentConnect = parseWithMqttPacket([0x10, ...m.encodeVarInt(ws.sent[0].body.length), ...ws.sent[0].body])[0];
  assert.deepEqual([sentConnect.cmd, sentConnect.username, Buffer.from(sentConnect.password).toString(), sentConnect.clean,
    sentConnect.protocolVersion], ['connect', 'alice', 'pt_x', true, 5]);
  assert.equal(connack.reasonCode, 0);
  assert.equal(c.clientId, 'given');
  assert.equal(c.keepAlive, 15);
  c.end();
  assert.equal(ws.sent.at(-1).type, m.PacketType.DISCONNECT);
  assert.ok(ws.closedByClient);
});

test('MqttClient rejects a refused CONNACK with its reason code', async () => {
  const c = new m.MqttClient({ url: 'ws://x/mqtt', username: 'a', password: 'wrong', WebSocket: FakeSocket });
  let closedWith = null;
  c.onclose = (e) => { closedWith = e; };
  const done = c.connect();
  await tick();
  FakeSocket.last.deliver(generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0x86 }));
  await assert.rejects(done, (e) => e.code === 0x86);
  assert.equal(closedWith.code, 0x86);
  assert.ok(FakeSocket.last.closedByClient);
});

test('MqttClient: QoS 1 publish resolves with the PUBACK reason; incoming QoS 1 is acknowledged', async () => {
  const { c, ws } = await connected();
  const got = [];
  c.onmessage = (p) => got.push(p);
  const p1 = c.publish('rooms/r/messages', '{"body":"hi","ckey":"k"}', { qos: 1 });
  const p2 = c.publish('rooms/r/messages', 'two', { qos: 1 });
  const pubs = ws.sent.filter((p) => p.type === m.PacketType.PUBLISH).map(m.decodePacket);
  assert.equal(pubs.length, 2);
  assert.notEqual(pubs[0].packetId, pubs[1].packetId);
  // Both PUBACKs and an incoming QoS 1 message in one WebSocket message, answered in order.
  ws.deliver([
    ...generate({ cmd: 'puback', messageId: pubs[1].packetId, reasonCode: 0x96 }),
    ...generate({ cmd: 'puback', messageId: pubs[0].packetId }),
    ...generate({ cmd: 'publish', topic: 'rooms/r/messages', qos: 1, messageId: 77, payload: Buffer.from('{"id":1}') }),
  ]);
  assert.equal(await p1, 0);
  assert.equal(await p2, 0x96);
  assert.equal(got.length, 1);
  assert.equal(new TextDecoder().decode(got[0].payload), '{"id":1}');
  const ack = m.decodePacket(ws.sent.at(-1));
  assert.deepEqual([ack.type, ack.packetId, ack.reasonCode], ['puback', 77, 0]);
  // QoS 0 goes out at once and resolves with 0.
  assert.equal(await c.publish('rooms/r/typing', '{}'), 0);
  assert.equal(m.decodePacket(ws.sent.at(-1)).qos, 0);
  c.end();
});

test('MqttClient: subscribe resolves with the SUBACK codes; a broken connection rejects what waits', async () => {
  const { c, ws } = await connected();
  const s = c.subscribe([{ topic: 'rooms/+/messages', qos: 1 }, { topic: 'presence/+', qos: 1 }]);
  const sub = ws.sent.at(-1);
  assert.equal(sub.type, m.PacketType.SUBSCRIBE);
  assert.equal(sub.flags, 2);
  const id = (sub.body[0] << 8) | sub.body[1];
  ws.deliver(generate({ cmd: 'suback', messageId: id, granted: [1, 0x87] }));
  assert.deepEqual(await s, [1, 0x87]);

  let closed = null;
  c.onclose = (e) => { closed = e; };
  const pending = c.publish('rooms/r/messages', 'x', { qos: 1 });
  ws.dropByPeer();
  await assert.rejects(pending, m.ConnectionClosed);
  assert.ok(closed instanceof m.ConnectionClosed);
  await assert.rejects(c.publish('a', 'b', { qos: 1 }), m.ConnectionClosed);
});

test("MqttClient keeps to the server's receive maximum", async () => {
  const { c, ws } = await connected({}, { cmd: 'connack', sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 1 } });
  const a = c.publish('t', 'a', { qos: 1 });
  const b = c.publish('t', 'b', { qos: 1 });
  let pubs = ws.sent.filter((p) => p.type === m.PacketType.PUBLISH);
  assert.equal(pubs.length, 1, 'the second waits for the first PUBACK');
  ws.deliver(generate({ cmd: 'puback', messageId: m.decodePacket(pubs[0]).packetId }));
  assert.equal(await a, 0);
  pubs = ws.sent.filter((p) => p.type === m.PacketType.PUBLISH);
  assert.equal(pubs.length, 2);
  assert.equal(new TextDecoder().decode(m.decodePacket(pubs[1]).payload), 'b');
  ws.deliver(generate({ cmd: 'puback', messageId: m.decodePacket(pubs[1]).packetId }));
  assert.equal(await b, 0);
  c.end();
});

test('MqttClient: a protocol error from the server closes with DISCONNECT 0x81', async () => {
  const { c, ws } = await connected();
  let closed = null;
  c.onclose = (e) => { closed = e; };
  ws.deliver(generate({ cmd: 'puback', messageId: 999 }));  // nothing was sent with that id
  assert.ok(closed);
  const last = m.decodePacket(ws.sent.at(-1));
  assert.deepEqual([last.type, last.reasonCode], ['disconnect', 0x81]);
  assert.ok(ws.closedByClient);
});

test('MqttClient sends PINGREQ after keep alive and gives up without PINGRESP', async (t) => {
  const { c, ws } = await connected({ keepAlive: 1 });
  let closed = null;
  c.onclose = (e) => { closed = e; };
  const pings = () => ws.sent.filter((p) => p.type === m.PacketType.PINGREQ).length;
  assert.equal(pings(), 0);
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(pings(), 1);
  ws.deliver(generate({ cmd: 'pingresp' }));
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(pings(), 2);
  assert.equal(closed, null);
  // No answer to this one: dead after another keep-alive period.
  await new Promise((r) => setTimeout(r, 1200));
  assert.ok(closed instanceof m.ConnectionClosed, 'closed for want of PINGRESP');
  assert.match(closed.message, /PINGRESP/);
});
