#!/usr/bin/env bash
# TLS benchmark: `parley bench --tls` against Parley and Mosquitto, both on TLS
# listeners with the same certificate (made here with the openssl CLI), 3 rounds
# alternating. Reports connection rate and messages/s for each, and the ratios.
# Loopback only; stops only the processes it started, by PID.
# Usage: Tests/bench/tls.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
seconds=${2:-5}
bin=.build/release/parley
[ -x "$bin" ] || flock /tmp/parley-build.lock swift build -c release --product parley
work=$(mktemp -d /tmp/parley-tls-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 -subj "/CN=Parley bench CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > "$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/server.pem" -days 2 -extfile "$work/ext.cnf" 2>/dev/null

# Mosquitto started as root drops to its own user, which must be able to read these.
chmod 755 "$work"
chmod 644 "$work"/*

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

start_broker() { # name port -> sets pid
    if [ "$1" = parley ]; then
        printf "durability = none\nsys_interval = 0\n" > "$work/parley.conf"
        "$bin" serve --plugins "" --config "$work/parley.conf" --mqtt 127.0.0.1:0 --mqtts "127.0.0.1:$2" \
            --cert "$work/server.pem" --key "$work/server.key" --data "$work/data" 2>/dev/null &
    else
        printf "listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n" \
            "$2" "$work/ca.pem" "$work/server.pem" "$work/server.key" > "$work/mosquitto.conf"
        mosquitto -c "$work/mosquitto.conf" 2>/dev/null &
    fi
    pid=$!
    wait_port "$2"
}

declare -A rate conn
for r in $(seq "$rounds"); do
    order="mosquitto parley"; [ $((r % 2)) -eq 0 ] && order="parley mosquitto"
    for b in $order; do
        port=$(free_port)
        start_broker "$b" "$port"
        c=$("$bin" bench connections --tls --cafile "$work/ca.pem" --broker "127.0.0.1:$port" --count 1000 --seconds 1 \
            --pid "$pid" --quiet | grep -o 'connect_per_s=[0-9.]*' | cut -d= -f2)
        m=$("$bin" bench pairs --tls --cafile "$work/ca.pem" --broker "127.0.0.1:$port" --count 50 --qos 1 --window 16 \
            --seconds "$seconds" --pid "$pid" --quiet | grep -o 'delivered_per_s=[0-9.]*' | cut -d= -f2)
        kill "$pid"; wait "$pid" 2>/dev/null || true
        rm -rf "$work/data"
        echo "round $r $b: TLS connections/s $c, QoS 1 pairs delivered/s $m"
        conn[$b]="${conn[$b]:-} $c"; rate[$b]="${rate[$b]:-} $m"
    done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for b in mosquitto parley; do
    echo "median $b: connections/s $(median "${conn[$b]}"), delivered/s $(median "${rate[$b]}")"
done
awk -v pc="$(median "${conn[parley]}")" -v mc="$(median "${conn[mosquitto]}")" \
    -v pm="$(median "${rate[parley]}")" -v mm="$(median "${rate[mosquitto]}")" \
    'BEGIN { printf "ratio parley/mosquitto: connections %.2fx, messages %.2fx\n", pc/mc, pm/mm }'
