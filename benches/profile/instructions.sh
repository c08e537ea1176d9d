#!/usr/bin/env bash
# Instructions per query (callgrind: counts, not seconds, so it is repeatable on
# a busy machine) for one or more servers.
#
#   benches/profile/instructions.sh target/release/clusterdns [OTHER_BINARY...]
#   MIX=1 benches/profile/instructions.sh target/release/clusterdns knot
#
# Default: a 2000-service cluster and 2000 distinct A queries over UDP,
#   per query = (Ir with N queries − Ir with 0 queries) / N.
# MIX=1: the load benchmark's cluster and query mix (benches/load/gen.py:
#   SERVICES services, default 10000; QUERIES queries, default 20000: 70% A,
#   10% SRV, 10% NXDOMAIN, 10% search-path misses), sent once and three times,
#   per query = (Ir three times − Ir once) / (2 × QUERIES), so start-up and
#   loading the data cancel out (issue 12's method). The server `knot` is
#   Knot DNS (knotd, 1 UDP worker) on the same names from gen.py's zone file.
#
# Needs valgrind, dnsperf and dig (apt-get install -y valgrind dnsperf dnsutils;
# knot for `knot`). Loopback only; every process it starts is stopped before
# it returns.
set -euo pipefail
N=${N:-2000}
PORT=${PORT:-5399}
MIX=${MIX:-0}
SERVICES=${SERVICES:-10000}
QUERIES=${QUERIES:-20000}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh" # knot_conf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$MIX" = 1 ]; then
    python3 "$here/../load/gen.py" --services "$SERVICES" --queries "$QUERIES" "$work" >/dev/null
    N=$QUERIES
    probe=$(awk 'NR==1 {print $1}' "$work/queries.txt")
else
python3 - "$work" "$N" <<'PY'
import sys
work, n = sys.argv[1], int(sys.argv[2])
docs, q = [], []
for i in range(n):
    ns = f"ns{i % 20}"
    docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {ns}}}\n"
                f"spec: {{clusterIP: 10.96.{(i // 250) % 256}.{i % 250 + 1}, ports: [{{name: http, port: 80}}]}}")
    q.append(f"svc{i}.{ns}.svc.cluster.local A")
open(f"{work}/cluster.yaml", "w").write("\n---\n".join(docs) + "\n")
open(f"{work}/queries.txt", "w").write("\n".join(q) + "\n")
PY
    probe=svc1.ns1.svc.cluster.local
fi
cat > "$work/Corefile" <<CF
.:$PORT {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests $work/cluster.yaml
    }
}
CF
knot_conf "$work" "$PORT"
total() { # SERVER TIMES -> total Ir (TIMES passes over the query file)
    local out="$work/cg.out" pid
    rm -f "$out"
    if [ "$1" = knot ]; then
        valgrind --tool=callgrind --callgrind-out-file="$out" "$(command -v knotd || echo /usr/sbin/knotd)" -c "$work/knot.conf" 2>/dev/null &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out" "$1" -conf "$work/Corefile" -quiet 2>/dev/null &
    fi
    pid=$!
    for _ in $(seq 1 240); do
        # An address, not just any response: before its data is loaded the
        # server answers SERVFAIL, and queries sent then would not measure answering.
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" "$probe" 2>/dev/null | grep -q '^[0-9]' && break
        sleep 0.5
    done
    if [ "$2" -gt 0 ]; then
        dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -n "$2" -q 20 -t 30 >/dev/null 2>&1
    fi
    kill -INT "$pid"; wait "$pid" || true
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
for bin in "$@"; do
    if [ "$MIX" = 1 ]; then
        once=$(total "$bin" 1)
        thrice=$(total "$bin" 3)
        echo "$bin: $(( (thrice - once) / (2 * N) )) instructions per query (Ir $once once, $thrice three times over $N queries of the mix)"
    else
        idle=$(total "$bin" 0)
        busy=$(total "$bin" 1)
        echo "$bin: $(( (busy - idle) / N )) instructions per query (Ir $idle idle, $busy with $N queries)"
    fi
done
