#!/usr/bin/env bash
# Instructions per query (callgrind: counts, not seconds, so it is repeatable on
# a busy machine) for one or more clusterdns binaries, on a 2000-service
# cluster and 2000 distinct A queries over UDP:
#   per query = (Ir with N queries − Ir with 0 queries) / N
#
#   benches/profile/instructions.sh target/release/clusterdns [OTHER_BINARY...]
#
# Needs valgrind, dnsperf and dig (apt-get install -y valgrind dnsperf dnsutils).
# Loopback only; every process it starts is stopped before it returns.
set -euo pipefail
N=${N:-2000}
PORT=${PORT:-5399}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
cat > "$work/Corefile" <<CF
.:$PORT {
    bind 127.0.0.1
    kubernetes cluster.local {
        manifests cluster.yaml
    }
}
CF
total() { # BIN QUERIES -> total Ir
    local out="$work/cg.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" -conf "$work/Corefile" -quiet 2>/dev/null &
    local pid=$!
    for _ in $(seq 1 120); do
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" svc1.ns1.svc.cluster.local >/dev/null 2>&1 && break
        sleep 0.5
    done
    if [ "$2" -gt 0 ]; then
        dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -n 1 -q 20 -t 30 >/dev/null 2>&1
    fi
    kill -INT "$pid"; wait "$pid" || true
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
for bin in "$@"; do
    idle=$(total "$bin" 0)
    busy=$(total "$bin" "$N")
    echo "$bin: $(( (busy - idle) / N )) instructions per query (Ir $idle idle, $busy with $N queries)"
done
