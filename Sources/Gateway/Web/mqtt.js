// mqtt.js: a small MQTT 5 client over the browser WebSocket, for Parley's web client.
//
// What it does: CONNECT (username + password, clean start, no will, session expiry 0),
// SUBSCRIBE, PUBLISH at QoS 0 and 1 (a QoS 1 publish resolves with the PUBACK's reason
// code), receiving PUBLISH at QoS 0 and 1 (answering PUBACK), PINGREQ keep-alive, and
// DISCONNECT. QoS 2, wills, topic aliases and AUTH are left out: the client never asks
// for them, and a server that sends them anyway is answered with a protocol error.
//
// The codec (encode*/PacketReader/decodePacket) is pure and exported, so that node can
// test it (Tests/web/mqtt_codec_test.mjs). MqttClient takes the WebSocket class as an
// option for the same reason; in the browser it is the global one.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const PacketType = Object.freeze({
  CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7,
  SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13,
  DISCONNECT: 14, AUTH: 15,
});

export class ProtocolError extends Error {}

// --- variable byte integer (MQTT 5 section 1.5.5) ---------------------------------------

export const VARINT_MAX = 268435455; // 4 bytes of 7 bits

/** The 1-4 byte encoding of n. */
export function encodeVarInt(n) {
  if (!Number.isInteger(n) || n < 0 || n > VARINT_MAX) throw new RangeError(`varint out of range: ${n}`);
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/**
 * Decodes a varint at bytes[offset]: {value, length}, or null when the bytes end before
 * it does (wait for more). Throws ProtocolError after a 4th continuation byte.
 */
export function decodeVarInt(bytes, offset = 0) {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (offset + i >= bytes.length) return null;
    const byte = bytes[offset + i];
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return { value, length: i + 1 };
    multiplier *= 128;
  }
  throw new ProtocolError('malformed variable byte integer');
}

// --- writing ------------------------------------------------------------------------------

/** Grows a byte array; the packet encoders write their variable header and payload here. */
class Writer {
  constructor() { this.bytes = []; }
  u8(n) { this.bytes.push(n & 0xff); return this; }
  u16(n) { this.bytes.push((n >> 8) & 0xff, n & 0xff); return this; }
  u32(n) { this.bytes.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff); return this; }
  varint(n) { this.bytes.push(...encodeVarInt(n)); return this; }
  raw(b) { for (const x of b) this.bytes.push(x); return this; }
  binary(b) {
    if (b.length > 0xffff) throw new RangeError('binary data longer than 65535 bytes');
    return this.u16(b.length).raw(b);
  }
  string(s) { return this.binary(encoder.encode(s)); }
}

function toBytes(payload) {
  if (payload == null) return new Uint8Array(0);
  if (typeof payload === 'string') return encoder.encode(payload);
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  throw new TypeError('payload must be a string, Uint8Array or ArrayBuffer');
}

// Property identifiers and their wire types (MQTT 5 section 2.2.2.2).
const PROPS = {
  0x01: ['payloadFormatIndicator', 'u8'], 0x02: ['messageExpiryInterval', 'u32'],
  0x03: ['contentType', 'string'], 0x08: ['responseTopic', 'string'],
  0x09: ['correlationData', 'binary'], 0x0b: ['subscriptionIdentifier', 'varint'],
  0x11: ['sessionExpiryInterval', 'u32'], 0x12: ['assignedClientIdentifier', 'string'],
  0x13: ['serverKeepAlive', 'u16'], 0x15: ['authenticationMethod', 'string'],
  0x16: ['authenticationData', 'binary'], 0x17: ['requestProblemInformation', 'u8'],
  0x18: ['willDelayInterval', 'u32'], 0x19: ['requestResponseInformation', 'u8'],
  0x1a: ['responseInformation', 'string'], 0x1c: ['serverReference', 'string'],
  0x1f: ['reasonString', 'string'], 0x21: ['receiveMaximum', 'u16'],
  0x22: ['topicAliasMaximum', 'u16'], 0x23: ['topicAlias', 'u16'],
  0x24: ['maximumQoS', 'u8'], 0x25: ['retainAvailable', 'u8'], 0x26: ['userProperty', 'pair'],
  0x27: ['maximumPacketSize', 'u32'], 0x28: ['wildcardSubscriptionAvailable', 'u8'],
  0x29: ['subscriptionIdentifierAvailable', 'u8'], 0x2a: ['sharedSubscriptionAvailable', 'u8'],
};
const PROP_IDS = Object.fromEntries(Object.entries(PROPS).map(([id, [name, type]]) => [name, [Number(id), type]]));

/** Properties {name: value} as bytes, with their length in front. userProperty: [[k, v], ...]. */
export function encodeProperties(props = {}) {
  const w = new Writer();
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const entry = PROP_IDS[name];
    if (!entry) throw new TypeError(`unknown property ${name}`);
    const [id, type] = entry;
    const values = type === 'pair' || (name === 'subscriptionIdentifier' && Array.isArray(value)) ? value : [value];
    for (const v of values) {
      w.varint(id);
      if (type === 'pair') w.string(v[0]).string(v[1]);
      else if (type === 'string') w.string(v);
      else if (type === 'binary') w.binary(toBytes(v));
      else w[type](v);
    }
  }
  return [...encodeVarInt(w.bytes.length), ...w.bytes];
}

/** A whole packet: fixed header (type, flags, remaining length) + body. */
function packet(type, flags, body) {
  const out = new Uint8Array(1 + encodeVarInt(body.length).length + body.length);
  out[0] = (type << 4) | flags;
  const len = encodeVarInt(body.length);
  out.set(len, 1);
  out.set(body, 1 + len.length);
  return out;
}

/**
 * CONNECT, MQTT 5. opts: clientId (may be ""), username, password (string or bytes),
 * keepAlive (seconds), cleanStart (default true), properties ({sessionExpiryInterval, ...}).
 */
export function encodeConnect(opts) {
  const { clientId = '', username, password, keepAlive = 30, cleanStart = true, properties = {} } = opts;
  let flags = cleanStart ? 0x02 : 0;
  if (username != null) flags |= 0x80;
  if (password != null) flags |= 0x40;
  const w = new Writer().string('MQTT').u8(5).u8(flags).u16(keepAlive);
  w.raw(encodeProperties(properties)).string(clientId);
  if (username != null) w.string(username);
  if (password != null) w.binary(toBytes(password));
  return packet(PacketType.CONNECT, 0, w.bytes);
}

/** PUBLISH. opts: topic, payload, qos (0|1), packetId (QoS 1), retain, dup, properties. */
export function encodePublish(opts) {
  const { topic, payload, qos = 0, packetId, retain = false, dup = false, properties = {} } = opts;
  if (qos !== 0 && qos !== 1) throw new RangeError('only QoS 0 and 1 are supported');
  const w = new Writer().string(topic);
  if (qos > 0) {
    if (!(packetId > 0 && packetId <= 0xffff)) throw new RangeError('QoS 1 needs a packet id 1-65535');
    w.u16(packetId);
  }
  w.raw(encodeProperties(properties)).raw(toBytes(payload));
  return packet(PacketType.PUBLISH, (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0), w.bytes);
}

/** PUBACK; the short form (packet id only) for success without properties. */
export function encodePuback(packetId, reasonCode = 0) {
  const w = new Writer().u16(packetId);
  if (reasonCode !== 0) w.u8(reasonCode).u8(0);
  return packet(PacketType.PUBACK, 0, w.bytes);
}

/**
 * SUBSCRIBE. subscriptions: [{topic, qos, noLocal, retainAsPublished, retainHandling}].
 */
export function encodeSubscribe(packetId, subscriptions, properties = {}) {
  if (subscriptions.length === 0) throw new RangeError('SUBSCRIBE needs at least one filter');
  const w = new Writer().u16(packetId).raw(encodeProperties(properties));
  for (const s of subscriptions) {
    const options = (s.qos ?? 0) | (s.noLocal ? 0x04 : 0) | (s.retainAsPublished ? 0x08 : 0) |
      ((s.retainHandling ?? 0) << 4);
    w.string(s.topic).u8(options);
  }
  return packet(PacketType.SUBSCRIBE, 0x02, w.bytes);
}

export function encodePingreq() { return packet(PacketType.PINGREQ, 0, []); }

export function encodeDisconnect(reasonCode = 0) {
  return packet(PacketType.DISCONNECT, 0, reasonCode === 0 ? [] : [reasonCode, 0]);
}

// --- reading ------------------------------------------------------------------------------

/**
 * Splits a byte stream into packets: push() each WebSocket message's bytes and get the
 * complete packets {type, flags, body} so far. A packet may span several pushes, and one
 * push may hold several packets.
 */
export class PacketReader {
  constructor(maxPacketSize = VARINT_MAX + 5) {
    this.buffer = new Uint8Array(0);
    this.maxPacketSize = maxPacketSize;
  }

  push(chunk) {
    const bytes = toBytes(chunk);
    if (this.buffer.length === 0) {
      this.buffer = bytes;
    } else {
      const joined = new Uint8Array(this.buffer.length + bytes.length);
      joined.set(this.buffer, 0);
      joined.set(bytes, this.buffer.length);
      this.buffer = joined;
    }
    const packets = [];
    let offset = 0;
    while (this.buffer.length - offset >= 2) {
      const len = decodeVarInt(this.buffer, offset + 1);
      if (len === null) break;
      const total = 1 + len.length + len.value;
      if (total > this.maxPacketSize) throw new ProtocolError(`packet of ${total} bytes is too large`);
      if (this.buffer.length - offset < total) break;
      const first = this.buffer[offset];
      packets.push({
        type: first >> 4,
        flags: first & 0x0f,
        body: this.buffer.subarray(offset + 1 + len.length, offset + total),
      });
      offset += total;
    }
    // Keep only the unfinished tail (copied, so the consumed packets' memory can go).
    this.buffer = this.buffer.slice(offset);
    return packets;
  }
}

/** Reads the fields of one packet body; every read checks that the bytes are there. */
class Reader {
  constructor(bytes) { this.bytes = bytes; this.pos = 0; }
  get remaining() { return this.bytes.length - this.pos; }
  need(n) { if (this.remaining < n) throw new ProtocolError('packet ends early'); }
  u8() { this.need(1); return this.bytes[this.pos++]; }
  u16() { this.need(2); const v = (this.bytes[this.pos] << 8) | this.bytes[this.pos + 1]; this.pos += 2; return v; }
  u32() {
    this.need(4);
    const b = this.bytes, p = this.pos;
    this.pos += 4;
    return ((b[p] << 24) >>> 0) + (b[p + 1] << 16) + (b[p + 2] << 8) + b[p + 3];
  }
  varint() {
    const v = decodeVarInt(this.bytes, this.pos);
    if (v === null) throw new ProtocolError('packet ends early');
    this.pos += v.length;
    return v.value;
  }
  binary() { const n = this.u16(); this.need(n); const v = this.bytes.slice(this.pos, this.pos + n); this.pos += n; return v; }
  string() {
    try { return decoder.decode(this.binary()); } catch (e) {
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError('invalid UTF-8 string');
    }
  }
  rest() { const v = this.bytes.slice(this.pos); this.pos = this.bytes.length; return v; }

  properties() {
    const length = this.varint();
    this.need(length);
    const end = this.pos + length;
    const props = {};
    while (this.pos < end) {
      const id = this.varint();
      const entry = PROPS[id];
      if (!entry) throw new ProtocolError(`unknown property 0x${id.toString(16)}`);
      const [name, type] = entry;
      if (type === 'pair') {
        (props.userProperty ??= []).push([this.string(), this.string()]);
      } else if (name === 'subscriptionIdentifier') {
        (props.subscriptionIdentifier ??= []).push(this.varint()); // may repeat in PUBLISH
      } else {
        if (name in props) throw new ProtocolError(`property ${name} given twice`);
        props[name] = this[type]();
      }
    }
    if (this.pos !== end) throw new ProtocolError('properties overrun their length');
    return props;
  }
}

/**
 * The fields of a packet from the server (MQTT 5): CONNACK, PUBLISH, PUBACK, SUBACK,
 * UNSUBACK, PINGRESP, DISCONNECT. Throws ProtocolError for anything malformed.
 */
export function decodePacket({ type, flags, body }) {
  const r = new Reader(body);
  const reserved = (want) => { if (flags !== want) throw new ProtocolError(`bad flags for packet type ${type}`); };
  let p;
  switch (type) {
    case PacketType.CONNACK: {
      reserved(0);
      const ack = r.u8();
      if (ack & 0xfe) throw new ProtocolError('bad CONNACK flags');
      p = { type: 'connack', sessionPresent: (ack & 1) === 1, reasonCode: r.u8(), properties: r.remaining ? r.properties() : {} };
      break;
    }
    case PacketType.PUBLISH: {
      const qos = (flags >> 1) & 3;
      if (qos === 3) throw new ProtocolError('PUBLISH with QoS 3');
      const topic = r.string();
      const packetId = qos > 0 ? r.u16() : undefined;
      if (qos > 0 && packetId === 0) throw new ProtocolError('PUBLISH with packet id 0');
      p = { type: 'publish', topic, qos, retain: (flags & 1) === 1, dup: (flags & 8) === 8, packetId,
        properties: r.properties(), payload: r.rest() };
      break;
    }
    case PacketType.PUBACK: case PacketType.PUBREC: case PacketType.PUBREL: case PacketType.PUBCOMP: {
      reserved(type === PacketType.PUBREL ? 2 : 0);
      const names = { 4: 'puback', 5: 'pubrec', 6: 'pubrel', 7: 'pubcomp' };
      p = { type: names[type], packetId: r.u16(), reasonCode: r.remaining ? r.u8() : 0 };
      p.properties = r.remaining ? r.properties() : {};
      break;
    }
    case PacketType.SUBACK: case PacketType.UNSUBACK: {
      reserved(0);
      p = { type: type === PacketType.SUBACK ? 'suback' : 'unsuback', packetId: r.u16(), properties: r.properties() };
      p.reasonCodes = Array.from(r.rest());
      if (p.reasonCodes.length === 0) throw new ProtocolError('SUBACK without reason codes');
      break;
    }
    case PacketType.PINGRESP:
      reserved(0);
      p = { type: 'pingresp' };
      break;
    case PacketType.DISCONNECT:
      reserved(0);
      p = { type: 'disconnect', reasonCode: r.remaining ? r.u8() : 0 };
      p.properties = r.remaining ? r.properties() : {};
      break;
    default:
      throw new ProtocolError(`unexpected packet type ${type} from the server`);
  }
  if (r.remaining !== 0) throw new ProtocolError(`${p.type} has ${r.remaining} bytes too many`);
  return p;
}

// --- the client -----------------------------------------------------------------------------

/** Why a connection ended: {code, reason} (code: a v5 reason code when the server said one). */
export class ConnectionClosed extends Error {
  constructor(message, code) { super(message); this.code = code; }
}

/**
 * One MQTT connection (no reconnecting here: the app makes a new client each time).
 *
 *   const c = new MqttClient({url, username, password, keepAlive: 30});
 *   c.onmessage = ({topic, payload, qos, retain, properties}) => ...;   // payload: Uint8Array
 *   c.onclose = (err) => ...;          // once, with a ConnectionClosed
 *   await c.connect();                 // the CONNACK; rejects on a refusal
 *   await c.subscribe([{topic: 'a/+', qos: 1}])   // the granted reason codes
 *   await c.publish('a/b', 'text', {qos: 1})      // the PUBACK reason code (0 for QoS 0)
 *   c.end();                           // DISCONNECT and close
 */
export class MqttClient {
  constructor(opts) {
    this.url = opts.url;
    this.username = opts.username;
    this.password = opts.password;
    this.clientId = opts.clientId ?? '';
    this.keepAlive = opts.keepAlive ?? 30;
    this.connectTimeout = opts.connectTimeout ?? 10000;
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.onmessage = null;
    this.onclose = null;
    this.ws = null;
    this.reader = new PacketReader();
    this.nextId = 1;
    this.pending = new Map();   // packet id -> {resolve, reject} for PUBACK / SUBACK
    this.waiting = [];          // QoS 1 publishes beyond the server's receive maximum
    this.inflight = 0;
    this.receiveMaximum = 65535;
    this.connected = false;
    this.closed = false;
    this.pingTimer = null;
    this.pingDeadline = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      this.connectWaiter = { resolve, reject };
      const ws = new this.WebSocket(this.url, ['mqtt']);
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      this.connectTimer = setTimeout(() => this.fail(new ConnectionClosed('no CONNACK in time')), this.connectTimeout);
      ws.onopen = () => {
        this.send(encodeConnect({ clientId: this.clientId, username: this.username, password: this.password,
          keepAlive: this.keepAlive, cleanStart: true }));
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data === 'string') return this.fail(new ConnectionClosed('text frame from the server'), 0x81);
        let packets;
        try { packets = this.reader.push(new Uint8Array(ev.data)); } catch (e) { return this.fail(e, 0x81); }
        for (const raw of packets) {
          if (this.closed) return;
          try { this.handle(decodePacket(raw)); } catch (e) { return this.fail(e, 0x81); }
        }
      };
      ws.onerror = () => {};  // onclose follows and says it
      ws.onclose = (ev) => this.fail(new ConnectionClosed(`WebSocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`));
    });
  }

  handle(p) {
    if (!this.connected && p.type !== 'connack') throw new ProtocolError(`${p.type} before CONNACK`);
    switch (p.type) {
      case 'connack': {
        if (this.connected) throw new ProtocolError('second CONNACK');
        clearTimeout(this.connectTimer);
        if (p.reasonCode >= 0x80) {
          const err = new ConnectionClosed(`connection refused (0x${p.reasonCode.toString(16)})`, p.reasonCode);
          this.fail(err);
          return;
        }
        this.connected = true;
        this.connack = p;
        if (p.properties.receiveMaximum) this.receiveMaximum = p.properties.receiveMaximum;
        if (p.properties.serverKeepAlive !== undefined) this.keepAlive = p.properties.serverKeepAlive;
        if (p.properties.assignedClientIdentifier) this.clientId = p.properties.assignedClientIdentifier;
        this.schedulePing();
        this.connectWaiter.resolve(p);
        break;
      }
      case 'publish':
        if (p.qos === 2) throw new ProtocolError('QoS 2 PUBLISH on a QoS 1 subscription');
        if (p.properties.topicAlias !== undefined) throw new ProtocolError('topic alias not allowed');
        if (p.qos === 1) this.send(encodePuback(p.packetId));
        if (this.onmessage) this.onmessage(p);
        break;
      case 'puback': {
        const w = this.pending.get(p.packetId);
        if (!w || w.kind !== 'publish') throw new ProtocolError(`PUBACK for unknown packet id ${p.packetId}`);
        this.pending.delete(p.packetId);
        this.inflight--;
        w.resolve(p.reasonCode);
        this.drainWaiting();
        break;
      }
      case 'suback': {
        const w = this.pending.get(p.packetId);
        if (!w || w.kind !== 'subscribe') throw new ProtocolError(`SUBACK for unknown packet id ${p.packetId}`);
        this.pending.delete(p.packetId);
        w.resolve(p.reasonCodes);
        break;
      }
      case 'pingresp':
        clearTimeout(this.pingDeadline);
        this.pingDeadline = null;
        break;
      case 'disconnect':
        this.fail(new ConnectionClosed(`server disconnected (0x${p.reasonCode.toString(16)})` +
          (p.properties.reasonString ? `: ${p.properties.reasonString}` : ''), p.reasonCode));
        break;
      default:
        throw new ProtocolError(`unexpected ${p.type}`);
    }
  }

  /** A packet id not in use (1-65535, wrapping). */
  allocId() {
    for (let i = 0; i < 0xffff; i++) {
      const id = this.nextId;
      this.nextId = id === 0xffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
    throw new Error('no packet id free');
  }

  subscribe(subscriptions) {
    if (!this.connected) return Promise.reject(new ConnectionClosed('not connected'));
    return new Promise((resolve, reject) => {
      const id = this.allocId();
      this.pending.set(id, { kind: 'subscribe', resolve, reject });
      this.send(encodeSubscribe(id, subscriptions));
    });
  }

  publish(topic, payload, { qos = 0, retain = false } = {}) {
    if (!this.connected) return Promise.reject(new ConnectionClosed('not connected'));
    if (qos === 0) {
      this.send(encodePublish({ topic, payload, qos: 0, retain }));
      return Promise.resolve(0);
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ topic, payload, retain, resolve, reject });
      this.drainWaiting();
    });
  }

  /** Sends the waiting QoS 1 publishes the server's receive maximum allows. */
  drainWaiting() {
    while (this.connected && this.waiting.length > 0 && this.inflight < this.receiveMaximum) {
      const { topic, payload, retain, resolve, reject } = this.waiting.shift();
      const id = this.allocId();
      this.pending.set(id, { kind: 'publish', resolve, reject });
      this.inflight++;
      this.send(encodePublish({ topic, payload, qos: 1, packetId: id, retain }));
    }
  }

  send(bytes) {
    if (!this.ws || this.ws.readyState !== 1 /* OPEN */) return;
    this.ws.send(bytes);
    if (this.connected) this.schedulePing();
  }

  /** PINGREQ after keepAlive seconds without sending; no PINGRESP in keepAlive more: dead. */
  schedulePing() {
    clearTimeout(this.pingTimer);
    if (!this.keepAlive || this.closed) return;
    this.pingTimer = setTimeout(() => {
      if (this.pingDeadline === null) {
        this.pingDeadline = setTimeout(() => this.fail(new ConnectionClosed('no PINGRESP')), this.keepAlive * 1000);
      }
      this.send(encodePingreq());
    }, this.keepAlive * 1000);
  }

  /** Ends the connection: DISCONNECT (normal) first. */
  end() {
    if (this.connected && !this.closed) this.send(encodeDisconnect(0));
    this.fail(new ConnectionClosed('closed by the client', 0));
  }

  /** Closes once: rejects whatever waits, tells onclose. reasonCode: sent in a DISCONNECT. */
  fail(err, reasonCode) {
    if (this.closed) return;
    if (reasonCode !== undefined && this.connected) this.send(encodeDisconnect(reasonCode));
    this.closed = true;
    this.connected = false;
    clearTimeout(this.connectTimer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.pingDeadline);
    const error = err instanceof ConnectionClosed ? err : new ConnectionClosed(err.message ?? String(err), reasonCode);
    for (const w of this.pending.values()) w.reject(error);
    for (const w of this.waiting) w.reject(error);
    this.pending.clear();
    this.waiting = [];
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
      try { this.ws.close(); } catch { /* already closing */ }
    }
    if (this.connectWaiter) this.connectWaiter.reject(error);
    if (this.onclose) this.onclose(error);
  }
}
