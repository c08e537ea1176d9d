#!/usr/bin/env bash
# Attack benchmark (issue 8 item 8): legitimate UDP queries/s that clusterdns
# answers undisturbed, and while an attacker holds 1,000 idle TCP connections
# open AND sends 2,000 malformed UDP packets/s; plus the server's RSS during
# the attack. Target: attacked >= 80% of undisturbed.
#
#   benches/attack/run.sh            # measure and write the section of benches/RESULTS.md
#   benches/attack/run.sh --help     # this text
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

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
bench_help "$0" "$@"
(($# == 0)) || die "no arguments: the settings are environment variables (see --help)"

COMMAND=$(bench_command "benches/attack/run.sh" CLUSTERDNS_BIN REPS DURATION CLIENTS OUTSTANDING CONNS MALFORMED SERVICES SERVER_CPU CLIENT_CPU PORT)
WORK="$LOAD_DIR/.cache/attack"  # git-ignored with the load benchmark's cache
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

bench_trap_cleanup
command -v dnsperf >/dev/null || apt_install dnsperf
need_pinning
# 1,000 connections need file descriptors on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > CONNS + 100 )) || die "ulimit -n $(ulimit -n) is too low for $CONNS connections"
ensure_clusterdns_bin
generate_cluster "$WORK" "$SERVICES" 100 4 100000

clusterdns_corefile "$WORK/Corefile" "$PORT" "$WORK/cluster.yaml"
port_must_be_free "$PORT" "set PORT"
log "starting clusterdns on $ADDR:$PORT (CPU $SERVER_CPU)"
taskset -c "$SERVER_CPU" "$CLUSTERDNS_BIN" -conf "$WORK/Corefile" -quiet >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_ready clusterdns "$PORT" "$WORK/server.log"

# perf NAME: one dnsperf run; prints its parsed JSON file.
perf() {
    run_dnsperf "$WORK/$1.out" "$PORT" "$DURATION" "$CLIENTS" "$OUTSTANDING" || die "dnsperf $1 failed"
    python3 "$LOAD_DIR/report.py" parse "$WORK/$1.out" >"$WORK/$1.json"
    echo "$WORK/$1.json"
}
# rate FILE: "Q q/s, L lost" of a parsed dnsperf run.
rate() { echo "$(jget "$1" qps) q/s, $(jget "$1" lost) lost"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }

log "warm-up"
perf warmup >/dev/null
RSS_IDLE=$(rss_kib)
LOAD_BEFORE=$(load_average)
: >"$WORK/runs.jsonl"
for rep in $(seq 1 "$REPS"); do
    f=$(perf "base-$rep")
    log "rep $rep undisturbed: $(rate "$f")"
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
    log "rep $rep attacked: $(rate "$f"); server fds at start $open_before; attacker $(cat "$WORK/attack-$rep.json")"
    echo "{\"rep\": $rep, \"kind\": \"attacked\", \"run\": $(cat "$f"), \"attacker\": $(cat "$WORK/attack-$rep.json"), \"server_fds\": $open_before, \"rss_max_kib\": $(cat "$WORK/rss-$rep.txt")}" >>"$WORK/runs.jsonl"
done
kill -0 "$SERVER_PID" 2>/dev/null || die "clusterdns died during the run; see $WORK/server.log"

M_COMMAND="$COMMAND" M_LOAD="$LOAD_BEFORE before, $(load_average) after" M_CPU="$(cpu_model)" \
    M_VERSION="$("$CLUSTERDNS_BIN" -version | head -1)" M_DNSPERF="$(dnsperf_version)" \
    M_RSS_IDLE="$RSS_IDLE" M_SETTINGS="dnsperf -c $CLIENTS -q $OUTSTANDING -l $DURATION; server on CPU $SERVER_CPU, dnsperf and attacker on CPU $CLIENT_CPU; $SERVICES services (benches/load/gen.py mix)" \
    M_ATTACK="$CONNS idle TCP connections held open (reconnected when the server closes them) + $MALFORMED malformed UDP packets/s" \
    python3 "$HERE/report.py" "$WORK/runs.jsonl" $([[ $WRITE_RESULTS == 1 ]] && echo --write "$ROOT/benches/RESULTS.md")
