#!/usr/bin/env bash
# Fair DNS benchmark (issue 12 item 1): clusterdns beside Knot DNS, NSD and a
# recvmmsg/sendmmsg UDP echo server (the load generator's ceiling), every one
# with the SAME dnsperf settings (-c 10 -q 500 -t 1.0), the same query file,
# the server pinned to core 0 and dnsperf to core 1, in interleaved
# repetitions. Unlike run.sh it does not pick a best setting per server, and
# it reports loss beside throughput instead of letting a lost query stall a
# 5 s slot. Writes the `fair` section of benches/RESULTS.md.
#
#   benches/load/fair.sh            # defaults below, ~9 minutes (526 s measured)
#   REPS=1 benches/load/fair.sh     # one repetition (~3 minutes)
#   benches/load/fair.sh --help     # this text
#
# Per repetition, per server (in SERVERS order): start, wait until it answers,
# warm up, then
#   udp   dnsperf -l DURATION                 max q/s and loss
#   tcp   dnsperf -l DURATION -m tcp          max q/s (not the echo server)
#   cpuN  dnsperf -l CPU_SECONDS -Q N         for N in RATES: server CPU time
#         (utime+stime of the server and its child processes, /proc/PID/stat)
#         before and after, divided by the queries answered
# then stop it. The first repetition also checks 200 sample answers against Knot's.
#
# Environment (defaults in brackets):
#   REPS         interleaved repetitions [3]
#   SERVERS      of: clusterdns knot nsd echo [all four]
#   DURATION     seconds of each max-rate run (-l) [10]
#   CPU_SECONDS  seconds of each fixed-rate run [10]
#   RATES        offered rates for CPU per query (-Q) [20000 80000]
#   WARMUP       seconds of warm-up after start [2]
#   CLIENTS [10]; OUTSTANDING [500]; TIMEOUT (dnsperf -t, seconds) [1.0]
#   SERVICES [10000]; NAMESPACES [100]; HEADLESS_EVERY [4]; QUERIES [100000]
#   SERVER_CPU [0]; CLIENT_CPU [1]; PORT_BASE: clusterdns +1, knot +2, nsd +3, echo +4 [15360]
#   WRITE_RESULTS  1 = write the RESULTS.md section [1 if all four servers ran]
#   CLUSTERDNS_BIN (skip the cargo build); NO_INSTALL=1 (never apt-get)
#
# Needs dnsperf, knotd, nsd (apt-get installs them when run as root), gcc,
# taskset, python3. Invariants: only 127.0.0.1; every process started here is
# killed on exit (trap); every step has a time bound. Data, binaries and raw
# output go to benches/load/.cache (git-ignored).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
bench_help "$0" "$@"

COMMAND=$(bench_command "benches/load/fair.sh${*:+ $*}" REPS SERVERS DURATION CPU_SECONDS RATES WARMUP CLIENTS OUTSTANDING TIMEOUT SERVICES NAMESPACES HEADLESS_EVERY QUERIES SERVER_CPU CLIENT_CPU PORT_BASE)
CACHE="$HERE/.cache"
WORK="$CACHE/run" # the generated cluster, shared with run.sh (same key, same files)
FAIR="$CACHE/fair"
REPS=${REPS:-3}
SERVERS=${SERVERS:-"clusterdns knot nsd echo"}
DURATION=${DURATION:-10}
CPU_SECONDS=${CPU_SECONDS:-10}
RATES=${RATES:-"20000 80000"}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-500}
TIMEOUT=${TIMEOUT:-1.0}
SERVICES=${SERVICES:-10000}
NAMESPACES=${NAMESPACES:-100}
HEADLESS_EVERY=${HEADLESS_EVERY:-4}
QUERIES=${QUERIES:-100000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-15360}
export DNSPERF_TIMEOUT=$TIMEOUT # read by run_dnsperf (lib.sh)

[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, not '$REPS'"
for s in $SERVERS; do
    case $s in clusterdns | knot | nsd | echo) ;; *) die "unknown server '$s' (clusterdns, knot, nsd, echo)" ;; esac
done

bench_trap_cleanup
rm -rf "$FAIR"
mkdir -p "$CACHE" "$WORK" "$FAIR"

# ---------------------------------------------------------------- tools
has() { [[ " $SERVERS " == *" $1 "* ]]; }
need_apt=()
command -v dnsperf >/dev/null || need_apt+=(dnsperf)
if has knot && ! command -v knotd >/dev/null && [[ ! -x /usr/sbin/knotd ]]; then need_apt+=(knot); fi
if has nsd && ! command -v nsd >/dev/null && [[ ! -x /usr/sbin/nsd ]]; then need_apt+=(nsd); fi
apt_install "${need_apt[@]}"
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
NSD=$(command -v nsd || echo /usr/sbin/nsd)
has knot && { [[ -x $KNOTD ]] || die "knotd not found after install"; }
has nsd && { [[ -x $NSD ]] || die "nsd not found after install"; }
command -v dnsperf >/dev/null || die "dnsperf not found after install"
command -v python3 >/dev/null || die "python3 is needed"
need_pinning

ECHO_BIN="$CACHE/echo"
if has echo; then
    command -v gcc >/dev/null || die "gcc is needed to build the echo server (apt-get install -y gcc)"
    if [[ ! -x $ECHO_BIN || $HERE/echo.c -nt $ECHO_BIN ]]; then
        log "compiling the echo server"
        gcc -O2 -Wall -Wextra -Werror -o "$ECHO_BIN" "$HERE/echo.c"
    fi
fi
CLUSTERDNS_BIN=${CLUSTERDNS_BIN:-}
has clusterdns && ensure_clusterdns_bin

# ---------------------------------------------------------------- data
generate_cluster "$WORK" "$SERVICES" "$NAMESPACES" "$HEADLESS_EVERY" "$QUERIES"

# ---------------------------------------------------------------- servers
# start_<server> DIR PORT: start it in the background pinned to SERVER_CPU; set SERVER_PID.
start_clusterdns() {
    clusterdns_corefile "$1/Corefile" "$2" "$WORK/cluster.yaml"
    taskset -c "$SERVER_CPU" "$CLUSTERDNS_BIN" -conf "$1/Corefile" -quiet >"$1/server.log" 2>&1 &
    SERVER_PID=$!
}
start_knot() { # as run.sh: one UDP, one TCP, one background worker
    cp "$WORK/cluster.local.zone" "$1/"
    knot_conf "$1" "$2"
    taskset -c "$SERVER_CPU" "$KNOTD" -c "$1/knot.conf" >"$1/server.log" 2>&1 &
    SERVER_PID=$!
}
start_nsd() { # one server process (server-count 1), no rate limit, otherwise NSD's defaults; -d: no daemonising
    cp "$WORK/cluster.local.zone" "$1/"
    cat >"$1/nsd.conf" <<EOF
server:
    ip-address: $ADDR
    port: $2
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$1"
    database: ""
    zonelistfile: "$1/zone.list"
    xfrdfile: "$1/xfrd.state"
    xfrdir: "$1"
    pidfile: "$1/nsd.pid"
    logfile: "$1/nsd.log"
    verbosity: 0
    # Debian's NSD is built with response rate limiting on (200 answers/s per /24): every
    # dnsperf query comes from 127.0.0.1, so without this NSD drops or truncates nearly all
    # of them. Knot and clusterdns have no rate limit by default either.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: cluster.local
    zonefile: cluster.local.zone
EOF
    taskset -c "$SERVER_CPU" "$NSD" -d -c "$1/nsd.conf" >"$1/server.log" 2>&1 &
    SERVER_PID=$!
}
start_echo() {
    taskset -c "$SERVER_CPU" "$ECHO_BIN" "$ADDR" "$2" >"$1/server.log" 2>&1 &
    SERVER_PID=$!
}
version_of() {
    case $1 in
        # `sed -n 1p` reads all input: `head -1` can end the writer with
        # SIGPIPE (nsd -v does), which pipefail turns into a failed run.
        clusterdns) "$CLUSTERDNS_BIN" -version 2>/dev/null | sed -n 1p ;;
        knot) "$KNOTD" --version 2>/dev/null | sed -n 1p | sed 's/knotd (Knot DNS), version /Knot DNS /' ;;
        nsd) "$NSD" -v 2>&1 | sed -n 1p ;;
        echo) echo "echo.c ($(gcc --version | sed -n 1p))" ;;
    esac
}
port_of() {
    case $1 in clusterdns) echo $((PORT_BASE + 1)) ;; knot) echo $((PORT_BASE + 2)) ;; nsd) echo $((PORT_BASE + 3)) ;; echo) echo $((PORT_BASE + 4)) ;; esac
}

# measure SERVER REP KIND SECONDS [dnsperf args]: one dnsperf run against the running
# server, with its CPU time before and after; appends one JSON line to results.jsonl.
measure() {
    local s=$1 rep=$2 kind=$3 secs=$4
    shift 4
    local out="$DIR/$kind-$rep.out" c0 c1 t0 t1
    c0=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    t0=$(date +%s.%N)
    run_dnsperf "$out" "$(port_of "$s")" "$secs" "$CLIENTS" "$OUTSTANDING" "$@" || true
    t1=$(date +%s.%N)
    c1=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    kill -0 "$SERVER_PID" 2>/dev/null || die "$s died during the $kind run; see $DIR/server.log"
    python3 "$HERE/fair_report.py" record "$out" "$s" "$rep" "$kind" "$c0" "$c1" "$t0" "$t1" >>"$FAIR/results.jsonl"
    python3 "$HERE/fair_report.py" show "$FAIR/results.jsonl" >&2
}

run_server() {
    local s=$1 rep=$2 port
    port=$(port_of "$s")
    DIR="$FAIR/$s"
    mkdir -p "$DIR"
    port_must_be_free "$port" "set PORT_BASE to use other ports"
    log "rep $rep/$REPS, $s: starting on $ADDR:$port (CPU $SERVER_CPU)"
    "start_$s" "$DIR" "$port"
    PIDS+=("$SERVER_PID")
    if [[ $s == echo ]]; then
        # It answers anything; wait until the port is bound (probe.py's wait needs a DNS answer).
        python3 "$HERE/fair_report.py" wait_udp "$ADDR" "$port" 10 || die "echo server did not start; see $DIR/server.log"
    else
        wait_ready "$s" "$port" "$DIR/server.log"
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || die "$s exited at start; see $DIR/server.log"
    if [[ $rep == 1 && $s != echo ]]; then
        python3 "$HERE/probe.py" answers "$ADDR" "$port" "$QFILE" 200 >"$FAIR/answers-$s.txt"
    fi
    run_dnsperf "$DIR/warmup.out" "$port" "$WARMUP" "$CLIENTS" "$OUTSTANDING" || true
    measure "$s" "$rep" udp "$DURATION"
    if [[ $s != echo ]]; then measure "$s" "$rep" tcp "$DURATION" -m tcp; fi
    local r
    for r in $RATES; do
        measure "$s" "$rep" "cpu$r" "$CPU_SECONDS" -Q "$r"
    done
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

LOAD_BEFORE=$(load_average)
T_START=$SECONDS
log "load average before the run: $LOAD_BEFORE ($(nproc) cores)"
for rep in $(seq 1 "$REPS"); do
    for s in $SERVERS; do
        run_server "$s" "$rep"
    done
done
LOAD_AFTER=$(load_average)
log "done in $((SECONDS - T_START)) s; load average after: $LOAD_AFTER"

# ---------------------------------------------------------------- report
# Sample answers against Knot's (the reference), first repetition.
MATCH=()
for s in $SERVERS; do
    [[ $s == echo || $s == knot || ! -f $FAIR/answers-knot.txt ]] && continue
    if diff -q "$FAIR/answers-knot.txt" "$FAIR/answers-$s.txt" >/dev/null; then
        MATCH+=("$s=yes (200/200)")
    else
        MATCH+=("$s=no ($(diff "$FAIR/answers-knot.txt" "$FAIR/answers-$s.txt" | grep -c '^>' || true)/200 differ)")
    fi
done

ALL=1
for s in clusterdns knot nsd echo; do has "$s" || ALL=0; done
WRITE_RESULTS=${WRITE_RESULTS:-$ALL}
DNSPERF_CMD="taskset -c $CLIENT_CPU dnsperf -s $ADDR -p PORT -d queries.txt -c $CLIENTS -q $OUTSTANDING -t $TIMEOUT -O suppress=timeouts,congestion,sendfailed,sockready,unexpected"
VERSIONS="dnsperf $(dnsperf_version)"
for s in clusterdns knot nsd echo; do has "$s" && VERSIONS+="; $(version_of "$s")"; done
M_COMMAND="$COMMAND" M_LOAD="$LOAD_BEFORE before, $LOAD_AFTER after" M_CPU="$(cpu_model)" \
    M_VERSIONS="$VERSIONS" M_MATCH="${MATCH[*]:-}" M_DNSPERF="$DNSPERF_CMD" M_ELAPSED="$((SECONDS - T_START))" \
    M_SERVERS="$SERVERS" M_REPS="$REPS" M_DURATION="$DURATION" M_CPU_SECONDS="$CPU_SECONDS" M_RATES="$RATES" \
    M_WARMUP="$WARMUP" M_SERVER_CPU="$SERVER_CPU" M_CLIENT_CPU="$CLIENT_CPU" \
    M_CLUSTER="$SERVICES Services over $NAMESPACES namespaces (1 in $HEADLESS_EVERY headless), the zone file with the same names (benches/load/gen.py), $QUERIES queries: 70% A of existing services, 10% SRV _port._tcp, 10% NXDOMAIN in the zone, 10% search-path misses" \
    python3 "$HERE/fair_report.py" meta >"$FAIR/meta.json"
echo
if [[ $WRITE_RESULTS == 1 ]]; then
    python3 "$HERE/fair_report.py" table "$FAIR/results.jsonl" "$FAIR/meta.json" --write "$ROOT/benches/RESULTS.md"
else
    python3 "$HERE/fair_report.py" table "$FAIR/results.jsonl" "$FAIR/meta.json"
    echo
    echo "(not written to benches/RESULTS.md: not all four servers ran; WRITE_RESULTS=1 forces it)"
fi
