// MQTT over WebSocket
