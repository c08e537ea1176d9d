#!/usr/bin/env bash
# What encryption costs (issue 13 item 2): one clusterdns process answering the
# same generated cluster over plain UDP, plain TCP, DNS over TLS (a tls://
# block) and DNS over HTTPS (an https:// block, HTTP/2), in interleaved
# repetitions: max q/s, loss, and server CPU per answered query (at max rate,
# and at one fixed offered rate). UDP, TCP and DoT are driven by dnsperf with
# fair.sh's settings; DoH by curl (HTTP/2, DOH_REQUESTS GET requests of the same
# query mix, OUTSTANDING streams at once on one connection): dnsperf 2.10's DoH
# mode does not get past ~60-95 q/s against this server whatever its
# concurrency, while curl moves 2,000 requests in 0.08 s (measured 2026-12-05),
# so it would measure dnsperf. Connections stay open (dnsperf keeps CLIENTS, curl
# one), so this is serving over established sessions, not handshakes. Writes the
# `encrypted` section of benches/RESULTS.md.
#
#   benches/load/encrypted.sh          # defaults below, ~5 minutes
#   REPS=1 benches/load/encrypted.sh   # one repetition
#   benches/load/encrypted.sh --help   # this text
#
# Environment (defaults in brackets):
#   REPS [3]; DURATION (seconds per max-rate run) [10]; RATE (offered q/s for
#   CPU per query) [20000]; CPU_SECONDS [10]; CLIENTS [10]; OUTSTANDING [500];
#   TIMEOUT (dnsperf -t) [1.0]; SERVICES [10000]; NAMESPACES [100];
#   HEADLESS_EVERY [4]; QUERIES [100000]; SERVER_CPU [0]; CLIENT_CPU [1];
#   PORT_BASE: udp/tcp +1, tls +2, https +3 [15460]; DOH_REQUESTS [20000];
#   WRITE_RESULTS [1];
#   CLUSTERDNS_BIN (skip the cargo build); NO_INSTALL=1 (never apt-get)
#
# No peer is measured: the Knot DNS and NSD of this Debian release serve no
# DoH, and comparing one peer's DoT alone would not say more than the ratios
# to our own plain TCP do. Invariants: only 127.0.0.1; every process started
# here is killed on exit (trap); every step has a time bound. Output goes to
# benches/load/.cache (git-ignored).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
source "$HERE/../lib.sh"
bench_help "$0" "$@"

COMMAND=$(bench_command "benches/load/encrypted.sh${*:+ $*}" REPS DURATION RATE CPU_SECONDS CLIENTS OUTSTANDING TIMEOUT SERVICES NAMESPACES HEADLESS_EVERY QUERIES SERVER_CPU CLIENT_CPU PORT_BASE DOH_REQUESTS)
CACHE="$HERE/.cache"
WORK="$CACHE/run" # the generated cluster, shared with run.sh and fair.sh
OUT="$CACHE/encrypted"
REPS=${REPS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-20000}
CPU_SECONDS=${CPU_SECONDS:-10}
CLIENTS=${CLIENTS:-10}
OUTSTANDING=${OUTSTANDING:-500}
TIMEOUT=${TIMEOUT:-1.0}
SERVICES=${SERVICES:-10000}
NAMESPACES=${NAMESPACES:-100}
HEADLESS_EVERY=${HEADLESS_EVERY:-4}
QUERIES=${QUERIES:-100000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-15460}
WRITE_RESULTS=${WRITE_RESULTS:-1}
DOH_REQUESTS=${DOH_REQUESTS:-20000}
export DNSPERF_TIMEOUT=$TIMEOUT # read by run_dnsperf (lib.sh)
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, not '$REPS'"

bench_trap_cleanup
rm -rf "$OUT"
mkdir -p "$CACHE" "$WORK" "$OUT"

need_apt=()
command -v dnsperf >/dev/null || need_apt+=(dnsperf)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
apt_install "${need_apt[@]}"
command -v dnsperf >/dev/null || die "dnsperf not found after install"
command -v openssl >/dev/null || die "openssl not found after install"
command -v curl >/dev/null || die "curl not found after install"
command -v python3 >/dev/null || die "python3 is needed"
need_pinning
ensure_clusterdns_bin
generate_cluster "$WORK" "$SERVICES" "$NAMESPACES" "$HEADLESS_EVERY" "$QUERIES"

# A throw-away self-signed certificate for 127.0.0.1 (dnsperf does not verify it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=clusterdns-bench -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

PLAIN=$((PORT_BASE + 1)) TLS=$((PORT_BASE + 2)) HTTPS=$((PORT_BASE + 3))
block() { # block KEY [TLS_LINE]: one server block over the generated cluster
    cat <<EOF
$1 {
    bind $ADDR
    ${2:-}
    kubernetes cluster.local {
        manifests $WORK/cluster.yaml
    }
}
EOF
}
{
    block "cluster.local:$PLAIN"
    block "tls://cluster.local:$TLS" "tls $OUT/cert.pem $OUT/key.pem"
    block "https://cluster.local:$HTTPS" "tls $OUT/cert.pem $OUT/key.pem"
} >"$OUT/Corefile"

# The DoH requests: the first DOH_REQUESTS queries of the mix as RFC 8484 GETs (ID 0).
python3 - "$QFILE" "$DOH_REQUESTS" "https://$ADDR:$HTTPS/dns-query" >"$OUT/curl.cfg" <<'PY'
import base64, struct, sys
qfile, n, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
types = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
lines = [l.split() for l in open(qfile) if l.strip()]
for i in range(n):
    name, qtype = lines[i % len(lines)][:2]
    wire = struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        wire += bytes([len(label)]) + label.encode()
    wire += b"\0" + struct.pack(">HH", types[qtype], 1)
    print(f'url = "{url}?dns={base64.urlsafe_b64encode(wire).decode().rstrip("=")}"')
    print("output = /dev/null")
PY

port_must_be_free "$PLAIN" "set PORT_BASE to use other ports"
log "starting clusterdns (udp/tcp :$PLAIN, tls :$TLS, https :$HTTPS) on CPU $SERVER_CPU"
taskset -c "$SERVER_CPU" "$CLUSTERDNS_BIN" -conf "$OUT/Corefile" -quiet >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_ready clusterdns "$PLAIN" "$OUT/server.log"
sleep 2

# measure REP KIND PORT SECONDS [dnsperf args]: one run, CPU time before and after.
measure() {
    local rep=$1 kind=$2 port=$3 secs=$4
    shift 4
    local out="$OUT/$kind-$rep.out" c0 c1 t0 t1
    c0=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    t0=$(date +%s.%N)
    run_dnsperf "$out" "$port" "$secs" "$CLIENTS" "$OUTSTANDING" "$@" || true
    t1=$(date +%s.%N)
    c1=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    kill -0 "$SERVER_PID" 2>/dev/null || die "clusterdns died during the $kind run; see $OUT/server.log"
    python3 "$HERE/fair_report.py" record "$out" clusterdns "$rep" "$kind" "$c0" "$c1" "$t0" "$t1" >>"$OUT/results.jsonl"
    python3 "$HERE/fair_report.py" show "$OUT/results.jsonl" >&2
}

# measure_doh REP: DOH_REQUESTS GETs with curl, OUTSTANDING streams at once; one JSON line
# like fair_report.py's records (completed = 200 responses).
measure_doh() {
    local rep=$1 out="$OUT/doh-$1.out" c0 c1 t0 t1
    c0=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    t0=$(date +%s.%N)
    timeout 120 taskset -c "$CLIENT_CPU" curl -sk --http2 --parallel --parallel-max "$OUTSTANDING" \
        -K "$OUT/curl.cfg" -w '%{http_code}\n' >"$out" 2>/dev/null || true
    t1=$(date +%s.%N)
    c1=$(python3 "$HERE/fair_report.py" cputime "$SERVER_PID")
    kill -0 "$SERVER_PID" 2>/dev/null || die "clusterdns died during the doh run; see $OUT/server.log"
    python3 - "$out" "$rep" "$c0" "$c1" "$t0" "$t1" "$DOH_REQUESTS" >>"$OUT/results.jsonl" <<'PY'
import json, sys
out, rep, c0, c1, t0, t1, sent = sys.argv[1:8]
ok = sum(1 for l in open(out) if l.strip() == "200")
wall = float(t1) - float(t0)
print(json.dumps({"server": "clusterdns", "rep": int(rep), "kind": "doh", "sent": int(sent),
                  "completed": ok, "lost": int(sent) - ok, "qps": ok / wall if wall else 0.0,
                  "cpu_s": round(float(c1) - float(c0), 4), "wall_s": round(wall, 3), "rcodes": {}}))
PY
    python3 "$HERE/fair_report.py" show "$OUT/results.jsonl" >&2
}

LOAD_BEFORE=$(load_average)
T_START=$(date +%s)
for rep in $(seq 1 "$REPS"); do
    for t in udp tcp dot doh; do
        case $t in
            udp) args=(-m udp) port=$PLAIN ;;
            tcp) args=(-m tcp) port=$PLAIN ;;
            dot) args=(-m dot) port=$TLS ;;
            doh)
                log "rep $rep/$REPS: doh (curl)"
                measure_doh "$rep"
                continue
                ;;
        esac
        log "rep $rep/$REPS: $t"
        measure "$rep" "$t" "$port" "$DURATION" "${args[@]}"
        measure "$rep" "$t-cpu$RATE" "$port" "$CPU_SECONDS" "${args[@]}" -Q "$RATE"
    done
done
WALL=$(($(date +%s) - T_START))

SECTION=$(
    python3 - "$OUT/results.jsonl" "$HERE" <<EOF
import sys
sys.path.insert(0, sys.argv[2])
import fair_report as fr
records = fr.load_records(sys.argv[1])
s = fr.summarize(records)["clusterdns"]
def f(v, fmt="{:,.0f}"):
    return "–" if v is None else fmt.format(v)
tcp = s["tcp"]["qps"][0]
print("## encrypted (DNS over TLS and HTTPS serving, issue 13 item 2)")
print()
print("Command: \`$COMMAND\` ($REPS interleaved repetitions of udp, tcp, dot, doh against one clusterdns process; wall time ${WALL} s).")
print()
print("UDP, TCP, DoT: \`taskset -c $CLIENT_CPU dnsperf -s $ADDR -p PORT -d queries.txt -c $CLIENTS -q $OUTSTANDING -t $TIMEOUT -O suppress=timeouts,congestion,sendfailed,sockready,unexpected -l SECONDS -m udp|tcp|dot [-Q $RATE]\`. DoH: \`taskset -c $CLIENT_CPU curl -sk --http2 --parallel --parallel-max $OUTSTANDING -K curl.cfg\` ($DOH_REQUESTS GETs of the same query mix on one connection; dnsperf's DoH mode stalls at ~60-95 q/s here, see the script). The server under \`taskset -c $SERVER_CPU\`; $SERVICES Services. Connections stay open, so TLS and HTTP/2 handshakes are not in the numbers.")
print()
print("Machine: $(nproc) cores, Linux \`$(uname -r)\`, $(cpu_model). Load average: $LOAD_BEFORE before, $(load_average) after. Date: $(date -u +%Y-%m-%d). $(dnsperf_version | sed 's/^/dnsperf /'); $("$CLUSTERDNS_BIN" -version 2>/dev/null | sed -n 1p).")
print()
print("| transport | max q/s median | min – max | loss | / plain TCP | CPU µs/query at max | CPU µs/query at $RATE q/s (min – max) |")
print("|---|---|---|---|---|---|---|")
for t, name in [("udp", "UDP"), ("tcp", "TCP"), ("dot", "DoT (tls://)"), ("doh", "DoH (https://, HTTP/2 GET, curl)")]:
    d, c = s[t], s.get(f"{t}-cpu$RATE")
    med, lo, hi = d["qps"]
    cm, cl, ch = c["cpu_us"] if c else (None, None, None)
    ratio = med / tcp if tcp else None
    print(f"| {name} | {f(med)} | {f(lo)} – {f(hi)} | {f(d['loss_pct'], '{:.3f}%')} | {f(ratio, '{:.2f}×')} | {f(d['cpu_us'][0], '{:.2f}')} | {f(cm, '{:.2f}')} ({f(cl, '{:.2f}')} – {f(ch, '{:.2f}')}) |")
EOF
)
echo "$SECTION"
if [[ $WRITE_RESULTS == 1 ]]; then
    python3 - "$ROOT/benches/RESULTS.md" <<EOF
import re, sys
path = sys.argv[1]
text = open(path).read()
section = """<!-- BEGIN encrypted -->
$SECTION
<!-- END encrypted -->"""
if "<!-- BEGIN encrypted -->" in text:
    text = re.sub(r"<!-- BEGIN encrypted -->.*?<!-- END encrypted -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
EOF
    log "wrote the encrypted section of benches/RESULTS.md"
fi
