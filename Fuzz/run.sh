#!/usr/bin/env bash
# Builds the libFuzzer harnesses and runs each one on a copy of its committed seed
# corpus. Exits non-zero if any harness finds a crash (or a timeout or OOM).
#
#   Fuzz/run.sh SECONDS [HARNESS...]    run each harness for SECONDS seconds
#   Fuzz/run.sh --runs N [HARNESS...]   run each harness for N executions
#
# HARNESS is frame, roundtrip, topic, config, chat, json, http, websocket, rest, smtp-reply or
# http-response (default: all,
# one after the other).
# Environment: SKIP_BUILD=1 to reuse the last build.
# Working corpora go to Fuzz/corpus-work/<harness>/ (recreated from
# Fuzz/corpus/<harness>/ on every run), crashes and logs to Fuzz/artifacts/.
set -uo pipefail

usage() {
    echo "usage: $0 SECONDS [HARNESS...] | $0 --runs N [HARNESS...]   (HARNESS: frame roundtrip topic config chat json http websocket rest smtp-reply http-response)" >&2
    exit 2
}

[ $# -ge 1 ] || usage
if [ "$1" = "--runs" ]; then
    [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || usage
    limit=(-runs="$2")
    shift 2
elif [[ "$1" =~ ^[0-9]+$ ]]; then
    limit=(-max_total_time="$1")
    shift
else
    usage
fi
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(frame roundtrip topic config chat json http websocket rest smtp-reply http-response)
for h in "${harnesses[@]}"; do
    case "$h" in frame | roundtrip | topic | config | chat | json | http | websocket | rest | smtp-reply | http-response) ;; *) usage ;; esac
done

cd "$(dirname "$0")"
fuzz_dir=$(pwd)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "== building harnesses (release, fuzzer + address sanitizer)"
    # The lock keeps this build from running at the same time as any other build of the repository.
    if ! flock /tmp/parley-build.lock swift build -c release --sanitize=fuzzer \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld; then
        echo "run.sh: build failed" >&2
        exit 1
    fi
fi
bin="$fuzz_dir/.build/release"
mkdir -p artifacts corpus-work

# Inputs longer than this add little and slow the search: 4 KiB holds a session of
# several packets (or one large one), or a REST body with room to nest; topics are short.
max_len() {
    case "$1" in frame) echo 4096 ;; roundtrip) echo 4096 ;; topic) echo 512 ;; config) echo 2048 ;; chat) echo 2048 ;; json) echo 4096 ;;
        http) echo 4096 ;; websocket) echo 4096 ;; rest) echo 2048 ;; smtp-reply) echo 4096 ;; http-response) echo 4096 ;; esac
}

export SWIFT_BACKTRACE=enable=no
status=0
summary=()
for h in "${harnesses[@]}"; do
    work="corpus-work/$h"
    log="artifacts/$h.log"
    rm -rf "$work"
    mkdir -p "$work"
    cp corpus/"$h"/* "$work"/
    echo "== fuzz-$h ${limit[*]} (log: Fuzz/$log)"
    dict=mqtt.dict
    [ "$h" = config ] && dict=config.dict
    [ "$h" = chat ] && dict=chat.dict
    [ "$h" = json ] && dict=json.dict
    [ "$h" = http ] && dict=http.dict
    [ "$h" = websocket ] && dict=websocket.dict
    [ "$h" = rest ] && dict=rest.dict
    [ "$h" = smtp-reply ] && dict=smtp-reply.dict
    [ "$h" = http-response ] && dict=http-response.dict
    "$bin/fuzz-$h" "${limit[@]}" -dict="$dict" -max_len="$(max_len "$h")" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="artifacts/$h-" "$work" >"$log" 2>&1
    rc=$?
    done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)
    rate=$(grep -E '^#[0-9]+\s+DONE ' "$log" | tail -1 | sed -E 's/.*exec\/s: ([0-9]+).*/\1/')
    if [ $rc -ne 0 ]; then
        status=1
        crash=$(grep -oE 'Test unit written to \S+' "$log" | tail -1 | sed 's/Test unit written to //')
        [ -n "$crash" ] && crash="Fuzz/$crash" || crash="none written, see Fuzz/$log"
        grep -E 'ERROR: |Fatal error|SUMMARY' "$log" | head -5
        echo "fuzz-$h: FAILED (exit $rc); crashing input: $crash"
        summary+=("fuzz-$h: FAILED (exit $rc); crashing input: $crash")
    else
        echo "fuzz-$h: ${done_line:-no Done line, see Fuzz/$log}${rate:+ ($rate exec/s)}"
        summary+=("fuzz-$h: ${done_line}${rate:+ ($rate exec/s)}")
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
