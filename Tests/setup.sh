#!/usr/bin/env bash
# Installs what building and testing Parley needs on a fresh Debian 12 machine
# with the Swift toolchain: the C libraries, and the third-party peers the tests
# talk to (Mosquitto and its clients, paho-mqtt, pytest; for the HTTP gateway: MQTT.js on
# Node.js, headless Chromium with its driver and Selenium, openapi-spec-validator,
# schemathesis, prometheus_client, kosoku for the Autobahn WebSocket cases; aiosmtpd for the
# notification tests' SMTP server). Safe to run again: it
# installs only what is missing. Needs root or sudo for apt-get.
set -euo pipefail

apt_packages=(libssl-dev openssl libsqlite3-dev mosquitto mosquitto-clients python3 python3-pip
              nodejs node-mqtt chromium chromium-driver)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pip_packages=(paho-mqtt pytest selenium schemathesis openapi-spec-validator prometheus_client kosoku http-ece cryptography aiosmtpd)
if ! python3 -c 'import paho.mqtt, pytest, selenium, schemathesis, openapi_spec_validator, prometheus_client, http_ece, cryptography, aiosmtpd' 2>/dev/null \
        || ! command -v kosoku >/dev/null; then
    python3 -m pip install -q "${pip_packages[@]}" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "${pip_packages[@]}"
fi
