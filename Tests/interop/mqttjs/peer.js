// An MQTT.js peer for test_websocket.py (run: NODE_PATH=/usr/share/nodejs node peer.js ...).
//
//   node peer.js URL VERSION USERNAME PASSWORD TOPIC_IN TOPIC_OUT COUNT [CA_FILE]
//
// Connects to URL (ws:// or wss://; CA_FILE: the CA that signed the server certificate),
// subscribes to TOPIC_IN at QoS 2, prints {"event":"ready"}, prints every message it gets
// ({"event":"message",...}, payload in base64), and after COUNT messages publishes three to
// TOPIC_OUT (QoS 0, 1, 2; with a user property on protocol version 5), waits for their
// acknowledgements, prints {"event":"published"}, disconnects cleanly and exits 0.
// Every output line is one JSON object. Any error prints {"event":"error"} and exits 2;
// 20 s without finishing prints {"event":"timeout"} and exits 3.
'use strict';
const fs = require('fs');
const mqtt = require('mqtt');

const [url, version, username, password, topicIn, topicOut, countArg, caFile] = process.argv.slice(2);
const count = parseInt(countArg, 10);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (what, e) => { out({ event: 'error', what, message: String(e && e.message || e) }); process.exit(2); };

setTimeout(() => { out({ event: 'timeout' }); process.exit(3); }, 20000).unref();

const opts = {
  protocolVersion: parseInt(version, 10),
  clientId: 'mqttjs-' + process.pid + '-' + Date.now(),
  username,
  password,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  keepalive: 30,
};
if (caFile) {
  opts.ca = fs.readFileSync(caFile);
  opts.rejectUnauthorized = true;
}
const client = mqtt.connect(url, opts);
let received = 0;
let publishing = false;

client.on('error', (e) => fail('client', e));
client.on('close', () => { if (!publishing) fail('close', 'connection closed before the end'); });
client.on('connect', (connack) => {
  out({ event: 'connect', sessionPresent: !!connack.sessionPresent,
        code: connack.reasonCode !== undefined ? connack.reasonCode : connack.returnCode });
  client.subscribe(topicIn, { qos: 2 }, (err, granted) => {
    if (err) return fail('subscribe', err);
    out({ event: 'ready', granted: granted.map((g) => g.qos) });
  });
});
client.on('message', (topic, payload, packet) => {
  const props = packet.properties || {};
  out({ event: 'message', topic, payload: payload.toString('base64'), qos: packet.qos,
        retain: !!packet.retain, userProperties: props.userProperties || null });
  received += 1;
  if (received !== count) return;
  publishing = true;
  let left = 3;
  for (const qos of [0, 1, 2]) {
    const popts = { qos };
    if (opts.protocolVersion === 5) popts.properties = { userProperties: { via: 'mqtt.js', qos: String(qos) } };
    client.publish(topicOut, 'from-mqttjs-q' + qos, popts, (err) => {
      if (err) return fail('publish', err);
      left -= 1;
      if (left === 0) {
        out({ event: 'published' });
        client.end(false, {}, () => { out({ event: 'end' }); process.exit(0); });
      }
    });
  }
});
