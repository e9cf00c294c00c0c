#!/usr/bin/env bash
# Soak test: builds release and runs IntegrationTests.SoakTests against the real
# broker binary with 2,000 concurrent loopback clients (1,000 QoS 1 pairs).
#   Tests/soak.sh            # 60 s
#   PARLEY_SOAK_SECONDS=300 PARLEY_SOAK_PAIRS=1000 PARLEY_SOAK_RATE=5 Tests/soak.sh
#   PARLEY_SOAK_CONFIG=debug Tests/soak.sh   # without the release build
set -euo pipefail
cd "$(dirname "$0")/.."
export PARLEY_SOAK_SECONDS="${PARLEY_SOAK_SECONDS:-60}"
config="${PARLEY_SOAK_CONFIG:-release}"
# Two sockets per client on this host (ours and the broker's), plus slack.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true
echo "soak: ${PARLEY_SOAK_SECONDS}s, config=$config, ulimit -n $(ulimit -n)"
lock=(flock /tmp/parley-build.lock)
command -v flock >/dev/null || lock=()
"${lock[@]}" swift build -c "$config" --build-tests -Xswiftc -enable-testing
exec swift test -c "$config" --skip-build --filter IntegrationTests.SoakTests
