#!/usr/bin/env bash
# The seed story end to end on this machine, no cluster needed: the test API
# server holds nginx-deployment's 4 pods and nginx-service; the endpoints
# controller writes the EndpointSlices, the DNS server answers, the proxy
# programs nftables, and a client namespace curls http://nginx-service/.
# Then a pod is deleted and DNS and the rotation follow. Each step is printed.
# Everything runs in network namespaces the demo creates and removes
# (tests/seed_demo.rs); nothing else on the machine is changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root for network namespaces and nftables: sudo $0" >&2
    exit 1
fi
missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
if ((${#missing[@]})); then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "building (first run takes a few minutes)..."
if cargo test --quiet --test seed_demo -- --nocapture 2>&1 | tee "$log" | sed -un 's/.*STORY: /  /p'; then
    if grep -q "test result: ok. 1 passed" "$log"; then
        echo "the story ran to its end."
        exit 0
    fi
fi
echo "demo failed; full output:" >&2
cat "$log" >&2
exit 1
