#!/usr/bin/env python3
"""Parse dnsperf output and turn per-server results into the benchmark table.

Why: run.sh measures one server at a time and keeps each server's numbers in
its own JSON file (so `SERVERS=clusterdns run.sh` can be rerun alone and still
be compared with the last peer runs); this file owns the arithmetic and the
Markdown, so the shell script stays a sequence of commands.

Invariant: the RESULTS.md section between `<!-- BEGIN load -->` and
`<!-- END load -->` (or another name's markers, for fair_report.py) is the
only part of that file ever rewritten; if the markers are missing the section
is inserted before the hand-written analysis. Standard library only.

Subcommands:
  parse DNSPERF_OUT            -> JSON on stdout (qps, latency, loss, p50/p99 from -v lines)
  score DNSPERF_OUT            -> one line ranking a trial run (run.sh picks the best setting)
  table RESULTS_DIR META_JSON [--write RESULTS_MD]
"""

import json
import os
import re
import sys

ORDER = ["clusterdns", "knot", "hickory"]
LABEL = {"clusterdns": "clusterdns", "knot": "Knot DNS", "hickory": "hickory-dns"}


def parse(path):
    r = {"sent": 0, "completed": 0, "lost": 0, "qps": 0.0, "avg_ms": None,
         "max_ms": None, "p50_ms": None, "p99_ms": None, "rcodes": {}}
    lat = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                parts = line.split()
                # "> RCODE name type latency"; timeouts are "> T name type".
                if len(parts) >= 5 and parts[1] != "T":
                    try:
                        lat.append(float(parts[-1]))
                    except ValueError:
                        pass
                continue
            s = line.strip()
            m = re.match(r"Queries sent:\s+(\d+)", s)
            if m:
                r["sent"] = int(m.group(1))
            m = re.match(r"Queries completed:\s+(\d+)", s)
            if m:
                r["completed"] = int(m.group(1))
            m = re.match(r"Queries lost:\s+(\d+)", s)
            if m:
                r["lost"] = int(m.group(1))
            m = re.match(r"Queries per second:\s+([\d.]+)", s)
            if m:
                r["qps"] = float(m.group(1))
            m = re.match(r"Average Latency \(s\):\s+([\d.]+) \(min ([\d.]+), max ([\d.]+)\)", s)
            if m:
                r["avg_ms"] = float(m.group(1)) * 1000
                r["max_ms"] = float(m.group(3)) * 1000
            m = re.match(r"Response codes:\s+(.*)", s)
            if m:
                for part in m.group(1).split(","):
                    kv = part.strip().split()
                    if len(kv) >= 2:
                        r["rcodes"][kv[0]] = int(kv[1])
    if r["avg_ms"] is not None and r["avg_ms"] > 60_000:
        # dnsperf 2.10 prints garbage averages when late answers arrive after a timeout.
        r["avg_ms"] = r["max_ms"] = None
    if lat:
        lat.sort()
        r["p50_ms"] = lat[len(lat) // 2] * 1000
        r["p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        r["latency_samples"] = len(lat)
    return r


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}"


def load(results_dir):
    out = {}
    for s in ORDER:
        p = os.path.join(results_dir, f"{s}.json")
        if os.path.exists(p):
            with open(p) as f:
                out[s] = json.load(f)
    return out


def table(res, this_run):
    rows = [
        "| server | version | dnsperf setting | queries/s (max) | avg latency ms (max) | lost (max run) "
        "| rate at 80% (-Q) / achieved | lost at 80% | avg ms at 80% | p50 ms at 80% | p99 ms at 80% "
        "| peak RSS MiB (VmHWM) | answers = Knot's (sample) | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in ORDER:
        if s not in res:
            continue
        r = res[s]
        mx, lo = r["max"], r["at80"]
        when = "this run" if s in this_run else f"earlier ({r['date']})"
        name = f"**{LABEL[s]}**" if s == "clusterdns" else LABEL[s]
        rows.append(
            f"| {name} | {r['version']} | `-c {r['clients']} -q {r['outstanding']}` "
            f"| {fmt(mx['qps'], 0)} | {fmt(mx['avg_ms'], 3)} | {fmt(mx['lost'])} of {fmt(mx['sent'])} "
            f"| {fmt(r['rate80'])} / {fmt(lo['qps'], 0)} | {fmt(lo['lost'])} of {fmt(lo['sent'])} | {fmt(lo['avg_ms'], 3)} "
            f"| {fmt(lo['p50_ms'], 3)} | {fmt(lo['p99_ms'], 3)} "
            f"| {fmt(r['vmhwm_kib'] / 1024, 1)} | {r.get('answers_match', '–')} | {when} |"
        )
    lines = ["\n".join(rows), ""]
    c = res.get("clusterdns")
    ratios = []
    for peer, target in (("knot", 0.5), ("hickory", 1.5)):
        if c and peer in res and res[peer]["max"]["qps"] > 0:
            q = c["max"]["qps"] / res[peer]["max"]["qps"]
            m = c["vmhwm_kib"] / res[peer]["vmhwm_kib"] if res[peer]["vmhwm_kib"] else 0
            verdict = "**met**" if q >= target else "**not met**"
            ratios.append(
                f"| clusterdns / {LABEL[peer]} | {q:.2f}× | ≥ {target}× | {verdict} | {m:.2f}× |"
            )
    if ratios:
        lines.append("| ratio | queries/s | target | | peak RSS |")
        lines.append("|---|---|---|---|---|")
        lines.extend(ratios)
        lines.append("")
    if c:
        z = c["at80"]["lost"]
        lines.append(
            f"Zero lost queries at 80% of clusterdns's maximum rate: "
            f"{'**met**' if z == 0 else f'**not met** ({z} lost)'}."
        )
    return "\n".join(lines)


def section(meta, body):
    return "\n".join([
        "## load",
        "",
        f"Command: `{meta['command']}` (one server: `SERVERS=clusterdns benches/load/run.sh`; "
        "sizes and timings: `SERVICES`, `NAMESPACES`, `DURATION`, `WARMUP`, `TRIAL`, `SETTINGS`; "
        "see the header of run.sh).",
        "",
        f"Machine: {meta['nproc']} cores (`nproc` = {meta['nproc']}), Linux `{meta['kernel']}` "
        f"(`uname -r`), {meta['cpu']}. Load average (1, 5, 15 min): {meta['load']}. "
        f"Date: {meta['date']}.",
        "",
        f"Versions: {meta['dnsperf']}, {meta['knot']}, {meta['hickory']}, {meta['clusterdns']}.",
        "",
        f"Cluster: {meta['cluster']}. Each server is pinned to CPU {meta['server_cpu']} "
        f"(`taskset -c {meta['server_cpu']}`), dnsperf to CPU {meta['client_cpu']}, UDP on 127.0.0.1. "
        "Knot: 1 UDP, 1 TCP and 1 background worker. hickory-dns: `--quiet` (its per-query INFO "
        "log costs ~16%), file zone store. clusterdns: `kubernetes cluster.local { manifests … }` "
        "only (no cache). Per server: warm-up, a short trial of every dnsperf setting, then "
        f"{meta['duration']} s at the best setting (max throughput), then {meta['duration']} s at "
        "80% of that rate (`-Q`) with `-v`, from which p50/p99 come (verbose output costs dnsperf "
        "~7% throughput, so the max run is without it). In the max run 'lost' includes bursts of "
        "`-q` queries overflowing the server's socket buffer and queries still in flight at the time limit.",
        "",
        body,
    ])


def write_section(path, text, name="load"):
    """Replace the RESULTS.md block between `<!-- BEGIN name -->` and `<!-- END name -->`."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    old = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        pre, rest = old.split(begin, 1)
        _, post = rest.split(end, 1)
        new = pre + block + post
    else:
        # New section goes before the hand-written analysis, if there is one.
        marker = "\n## Analysis"
        if marker in old:
            pre, post = old.split(marker, 1)
            new = pre.rstrip("\n") + "\n" + block + "\n" + marker + post
        else:
            new = old.rstrip("\n") + "\n" + block + "\n"
    with open(path, "w") as f:
        f.write(new)


def main():
    if sys.argv[1] == "parse":
        print(json.dumps(parse(sys.argv[2])))
        return 0
    if sys.argv[1] == "score":
        # "OK RANK QPS LOSS%": OK = 1 if at most 1% lost; RANK orders trials (higher is better).
        d = parse(sys.argv[2])
        loss = d["lost"] / d["sent"] if d["sent"] else 1.0
        ok = loss <= 0.01
        print(f"{int(ok)} {int(d['qps']) if ok else -d['lost']} {int(d['qps'])} {loss * 100:.2f}")
        return 0
    if sys.argv[1] == "table":
        res = load(sys.argv[2])
        with open(sys.argv[3]) as f:
            meta = json.load(f)
        body = table(res, set(meta.get("this_run", [])))
        print(body)
        if len(sys.argv) > 5 and sys.argv[4] == "--write":
            write_section(sys.argv[5], section(meta, body))
            print(f"\nwrote the load section of {sys.argv[5]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
