#!/usr/bin/env bash
# Installs what building and testing Parley needs on a fresh Debian 12 machine
# with the Swift toolchain: the C libraries and the third-party test peers.
# Safe to run again; installs only what is missing. Needs root (or sudo).
set -euo pipefail

apt_packages=(libssl-dev libsqlite3-dev)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
