# shellcheck shell=bash
# What the benchmark scripts (benches/load/run.sh and fair.sh, benches/attack/run.sh,
# benches/profile/instructions.sh)
# share, so that a fix to one step (process clean-up, tool install, the cluster
# cache, the dnsperf invocation) reaches every benchmark at once. Sourced, never
# run; the caller has already done `set -euo pipefail`.
#
# Invariants it keeps for its callers: traffic only to $ADDR (loopback); every
# process added to PIDS is killed on exit once bench_trap_cleanup is called;
# every dnsperf run and server wait is time-bounded.

BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCHES/.." && pwd)
LOAD_DIR="$BENCHES/load" # gen.py, probe.py and report.py, shared by the benchmarks
ADDR=127.0.0.1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# bench_help SCRIPT ARGS...: on -h/--help, print SCRIPT's header comment (its usage) and exit.
bench_help() {
    local script=$1
    shift
    case ${1:-} in
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$script"; exit 0 ;;
    esac
}

# bench_command COMMAND VAR...: COMMAND prefixed with each VAR that is set in the
# environment, so RESULTS.md records the exact command that produced its numbers.
bench_command() {
    local command=$1 v
    shift
    for v in "$@"; do
        [[ -n "${!v+x}" ]] && command="$v=\"${!v}\" $command"
    done
    echo "$command"
}

# PIDS: processes to stop on exit. bench_trap_cleanup installs the traps.
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && wait "$p" 2>/dev/null || true; done
}
bench_trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

# apt_install PACKAGE...: install the packages with apt-get (root only; refused when
# NO_INSTALL is set). No-op without arguments.
apt_install() {
    (($#)) || return 0
    [[ -n "${NO_INSTALL:-}" ]] && die "missing $* (NO_INSTALL is set)"
    if [[ $(id -u) -ne 0 ]]; then
        die "missing $*: run as root, or: sudo apt-get update && sudo apt-get install -y $*"
    fi
    log "installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# need_pinning: the server and the load generator each get a core of their own.
need_pinning() {
    command -v taskset >/dev/null || die "taskset (util-linux) is needed"
    (($(nproc) >= 2)) || die "needs 2 cores (server and dnsperf each pinned to one)"
}

# ensure_clusterdns_bin: build a release clusterdns unless CLUSTERDNS_BIN names one; sets CLUSTERDNS_BIN.
ensure_clusterdns_bin() {
    CLUSTERDNS_BIN=${CLUSTERDNS_BIN:-}
    [[ -n "$CLUSTERDNS_BIN" ]] && return 0
    log "building clusterdns (release)"
    (cd "$ROOT" && cargo build --release --bin clusterdns >&2)
    CLUSTERDNS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/clusterdns"
}

# generate_cluster DIR SERVICES NAMESPACES HEADLESS_EVERY QUERIES: write gen.py's
# cluster.yaml, zone file and queries.txt into DIR, unless DIR already holds them
# for these sizes and this gen.py. Sets QFILE and READY_NAME (a service A query
# that answers once the server has loaded the cluster).
generate_cluster() {
    local dir=$1 services=$2 namespaces=$3 headless_every=$4 queries=$5
    local key
    key="$services-$namespaces-$headless_every-$queries-$(sha1sum "$LOAD_DIR/gen.py" | cut -c1-12)"
    mkdir -p "$dir"
    if [[ "$(cat "$dir/.gen" 2>/dev/null)" != "$key" ]]; then
        log "generating the cluster ($services services)"
        python3 "$LOAD_DIR/gen.py" --services "$services" --namespaces "$namespaces" \
            --headless-every "$headless_every" --queries "$queries" "$dir" >&2
        echo "$key" >"$dir/.gen"
    fi
    QFILE="$dir/queries.txt"
    READY_NAME=$(awk '$2 == "A" && $1 !~ /missing/ { n = split($1, l, "."); if (n == 5) { print $1; exit } }' "$QFILE")
}

# clusterdns_corefile FILE PORT MANIFESTS: a Corefile serving cluster.local on $ADDR:PORT from MANIFESTS.
clusterdns_corefile() {
    cat >"$1" <<EOF
cluster.local:$2 {
    bind $ADDR
    kubernetes cluster.local {
        manifests $3
    }
}
EOF
}

# knot_conf DIR PORT: DIR/knot.conf for Knot DNS serving DIR/cluster.local.zone on
# $ADDR:PORT with one UDP, one TCP and one background worker, its state in DIR.
knot_conf() {
    cat >"$1/knot.conf" <<EOF
server:
    listen: $ADDR@$2
    rundir: $1
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: $1
template:
  - id: default
    storage: $1
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: cluster.local
    file: cluster.local.zone
EOF
}

# port_must_be_free PORT HINT: die (with HINT) if a server already answers READY_NAME on PORT.
port_must_be_free() {
    if python3 "$LOAD_DIR/probe.py" wait "$ADDR" "$1" 0.5 "$READY_NAME" A; then
        die "something already answers on $ADDR:$1; $2"
    fi
}

# wait_ready NAME PORT LOG: wait up to 180 s for an answer to READY_NAME; die with LOG's tail if none.
wait_ready() {
    if ! python3 "$LOAD_DIR/probe.py" wait "$ADDR" "$2" 180 "$READY_NAME" A; then
        tail -20 "$3" >&2
        die "$1 did not answer $READY_NAME within 180 s; see $3"
    fi
}

# run_dnsperf OUT PORT SECONDS CLIENTS OUTSTANDING [DNSPERF_ARG...]: one dnsperf run of
# QFILE against $ADDR:PORT, pinned to CLIENT_CPU, output in OUT. Fails (after
# logging why) when dnsperf printed no statistics.
run_dnsperf() {
    local out=$1 port=$2 secs=$3 clients=$4 outstanding=$5
    shift 5
    local rc=0
    # -t 5 (dnsperf's default) unless DNSPERF_TIMEOUT says otherwise: a query unanswered
    # after that is lost. A shorter timeout makes a slow server (hickory) collapse: it
    # answers queries dnsperf gave up on. fair.sh uses 1 s for every server, so that one
    # lost query does not hold an outstanding slot for 5 s (issue 12).
    timeout $((secs + 30)) taskset -c "$CLIENT_CPU" dnsperf -s "$ADDR" -p "$port" -d "$QFILE" \
        -l "$secs" -c "$clients" -q "$outstanding" -t "${DNSPERF_TIMEOUT:-5}" \
        -O suppress=timeouts,congestion,sendfailed,sockready,unexpected "$@" >"$out" 2>&1 || rc=$?
    grep -q '^Statistics' "$out" && return 0
    log "dnsperf gave no statistics (exit $rc); see $out"
    return 1
}

# jget FILE KEY: one top-level value of a JSON file.
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

# For the report: the machine and the tools the numbers came from.
cpu_model() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
dnsperf_version() { dnsperf -h 2>&1 | awk '/^Version/ {print $2}'; }
