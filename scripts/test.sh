#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need (dig from dnsutils;
# ip, nft, curl and conntrack for the proxy's namespace tests; cargo-deny) when
# it is missing, then the dependency policy, formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
# The service proxy's namespace tests (tests/proxy_*.rs) need ip, nft, curl and conntrack.
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "!!! WARNING: cannot install ${missing[*]} (not root, no sudo): tests that need them will be SKIPPED !!!" >&2
    fi
fi

# Dependency policy (licenses, bans, crates.io-only sources; see deny.toml for
# why advisories are not checked here). cargo-deny builds from crates.io.
if ! cargo deny --version >/dev/null 2>&1; then
    cargo install --locked cargo-deny
fi
cargo fetch --locked
cargo deny --offline check licenses bans sources

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# Module docs are how a newcomer finds their way: no broken links in them.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --all-targets
