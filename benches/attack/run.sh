#!/usr/bin/env bash
# Attack benchmark (issue 8 item 8): legitimate UDP queries/s that clusterdns
# answers undisturbed, and while an attacker holds 1,000 idle TCP connections
# open AND sends 2,000 malformed UDP packets/s; plus the server's RSS during
# the attack. Target: attacked >= 80% of undisturbed.
#
#   benches/attack/run.sh            # measure and write the section of benches/RESULTS.md
#
# Environment (defaults in brackets):
#   REPS         interleaved repetitions of (undisturbed, attacked) [3]
#   DURATION     seconds of each dnsperf run [10]
#   CLIENTS, OUTSTANDING  dnsperf -c / -q [10 / 100]
#   CONNS        idle TCP connections held open [1000]; MALFORMED packets/s [2000]
#   SERVICES     services in the generated cluster [10000] (benches/load/gen.py)
#   SERVER_CPU   core for the server [1]; CLIENT_CPU core for dnsperf and the attacker [0]
#   PORT         [15360]; CLUSTERDNS_BIN (skip the cargo build); WRITE_RESULTS [1]
#
# Same cluster and query mix as benches/load/run.sh (its gen.py). Each
# repetition runs dnsperf undisturbed, then under attack; medians are
# reported with the queries lost beside the rate. Invariants: traffic only to
# 127.0.0.1; every process started here is killed on exit; every step is time-bounded.
set -euo pipefail

COMMAND="benches/attack/run.sh"
for v in CLUSTERDNS_BIN REPS DURATION CLIENTS OUTSTANDING CONNS MALFORMED SERVICES SERVER_CPU CLIENT_CPU PORT; do
    [[ -n "${!v+x}" ]] && COMMAND="$v=\"${!v}\" $COMMAND"
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOAD="$ROOT/benches/load"
WORK="$LOAD/.cache/attack"  # git-ignored with the load benchmark's cache
REPS=${REPS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-100}
CONNS=${CONNS:-1000}
MALFORMED=${MALFORMED:-2000}
SERVICES=${SERVICES:-10000}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
PORT=${PORT:-15360}
WRITE_RESULTS=${WRITE_RESULTS:-1}
ADDR=127.0.0.1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v dnsperf >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "dnsperf missing: sudo apt-get install -y dnsperf"
    log "installing dnsperf with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf >/dev/null
fi
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
(( $(nproc) >= 2 )) || die "needs 2 cores"
# 1,000 connections need file descriptors on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > CONNS + 100 )) || die "ulimit -n $(ulimit -n) is too low for $CONNS connections"

CLUSTERDNS_BIN=${CLUSTERDNS_BIN:-}
if [[ -z "$CLUSTERDNS_BIN" ]]; then
    log "building clusterdns (release)"
    (cd "$ROOT" && cargo build --release --bin clusterdns >&2)
    CLUSTERDNS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/clusterdns"
fi

mkdir -p "$WORK"
GEN_KEY="$SERVICES-$(sha1sum "$LOAD/gen.py" | cut -c1-12)"
if [[ "$(cat "$WORK/.gen" 2>/dev/null)" != "$GEN_KEY" ]]; then
    log "generating the cluster ($SERVICES services)"
    python3 "$LOAD/gen.py" --services "$SERVICES" --namespaces 100 --headless-every 4 \
        --queries 100000 "$WORK" >&2
    echo "$GEN_KEY" >"$WORK/.gen"
fi
QFILE="$WORK/queries.txt"
READY_NAME=$(awk '$2 == "A" && $1 !~ /missing/ { n = split($1, l, "."); if (n == 5) { print $1; exit } }' "$QFILE")

cat >"$WORK/Corefile" <<EOF
cluster.local:$PORT {
    bind $ADDR
    kubernetes cluster.local {
        manifests $WORK/cluster.yaml
    }
}
EOF
if python3 "$LOAD/probe.py" wait "$ADDR" "$PORT" 0.5 "$READY_NAME" A; then
    die "something already answers on $ADDR:$PORT; set PORT"
fi
log "starting clusterdns on $ADDR:$PORT (CPU $SERVER_CPU)"
taskset -c "$SERVER_CPU" "$CLUSTERDNS_BIN" -conf "$WORK/Corefile" -quiet >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
python3 "$LOAD/probe.py" wait "$ADDR" "$PORT" 180 "$READY_NAME" A || die "clusterdns did not answer; see $WORK/server.log"

# perf NAME: one dnsperf run; prints its parsed JSON file.
perf() {
    local out="$WORK/$1.out"
    timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$PORT" -d "$QFILE" \
        -l "$DURATION" -c "$CLIENTS" -q "$OUTSTANDING" -t 5 \
        -O suppress=timeouts,congestion,sendfailed,sockready,unexpected >"$out" 2>&1 || true
    grep -q '^Statistics' "$out" || die "dnsperf $1 gave no statistics; see $out"
    python3 "$LOAD/report.py" parse "$out" >"$WORK/$1.json"
    echo "$WORK/$1.json"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

log "warm-up"
perf warmup >/dev/null
RSS_IDLE=$(rss_kib)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/runs.jsonl"
for rep in $(seq 1 "$REPS"); do
    f=$(perf "base-$rep")
    log "rep $rep undisturbed: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["qps"], "q/s,", d["lost"], "lost")' "$f")"
    echo "{\"rep\": $rep, \"kind\": \"undisturbed\", \"run\": $(cat "$f")}" >>"$WORK/runs.jsonl"

    # The attacker starts 3 s early (connections up) and stops 1 s after dnsperf.
    taskset -c "$CLIENT_CPU" python3 "$HERE/attack.py" "$ADDR" "$PORT" $((DURATION + 4)) \
        --conns "$CONNS" --malformed "$MALFORMED" >"$WORK/attack-$rep.json" &
    ATTACK_PID=$!
    PIDS+=("$ATTACK_PID")
    sleep 3
    ( max=0; for _ in $(seq 1 $((DURATION + 1))); do
          r=$(rss_kib); (( r > max )) && max=$r; sleep 1
      done; echo "$max" ) >"$WORK/rss-$rep.txt" &
    RSS_PID=$!
    PIDS+=("$RSS_PID")
    open_before=$(ls "/proc/$SERVER_PID/fd" | wc -l)
    f=$(perf "hit-$rep")
    wait "$ATTACK_PID" || die "attacker failed; see $WORK/attack-$rep.json"
    wait "$RSS_PID" || true
    log "rep $rep attacked: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["qps"], "q/s,", d["lost"], "lost")' "$f"); server fds at start $open_before; attacker $(cat "$WORK/attack-$rep.json")"
    echo "{\"rep\": $rep, \"kind\": \"attacked\", \"run\": $(cat "$f"), \"attacker\": $(cat "$WORK/attack-$rep.json"), \"server_fds\": $open_before, \"rss_max_kib\": $(cat "$WORK/rss-$rep.txt")}" >>"$WORK/runs.jsonl"
done
kill -0 "$SERVER_PID" 2>/dev/null || die "clusterdns died during the run; see $WORK/server.log"

M_COMMAND="$COMMAND" M_LOAD="$LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
    M_CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
    M_VERSION="$("$CLUSTERDNS_BIN" -version | head -1)" M_DNSPERF="$(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')" \
    M_RSS_IDLE="$RSS_IDLE" M_SETTINGS="dnsperf -c $CLIENTS -q $OUTSTANDING -l $DURATION; server on CPU $SERVER_CPU, dnsperf and attacker on CPU $CLIENT_CPU; $SERVICES services (benches/load/gen.py mix)" \
    M_ATTACK="$CONNS idle TCP connections held open (reconnected when the server closes them) + $MALFORMED malformed UDP packets/s" \
    python3 "$HERE/report.py" "$WORK/runs.jsonl" $([[ $WRITE_RESULTS == 1 ]] && echo --write "$ROOT/benches/RESULTS.md")
