#!/usr/bin/env python3
"""Measurements and the report of the fair benchmark (fair.sh, issue 12 item 1).

Why: fair.sh runs every server with the same dnsperf settings in interleaved
repetitions; this file owns what is not a shell command: reading a server's
CPU time from /proc, one JSON line per dnsperf run, and the arithmetic
(medians, loss, CPU per query, ratios to Knot DNS, the acceptance verdicts of
issue 12) and the Markdown of the `fair` section of benches/RESULTS.md.

Invariants: the targets below are the issue's and are only compared against,
never adjusted; a ratio whose inputs are missing is reported as missing, not
as met; only the text between `<!-- BEGIN fair -->` and `<!-- END fair -->`
is rewritten (report.write_section). Standard library only.

Subcommands:
  cputime PID                         -> CPU seconds of PID and its descendants
  wait_udp ADDR PORT SECONDS          -> exit 0 once a datagram sent there comes back
  record OUT SERVER REP KIND C0 C1 T0 T1   -> one JSON line (dnsperf OUT + CPU C0..C1, wall T0..T1)
  show RESULTS_JSONL                  -> a one-line summary of the last record (progress)
  meta                                -> the run's metadata as JSON, from M_* variables
  table RESULTS_JSONL META_JSON [--write RESULTS_MD]
"""

import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (dnsperf output parser and section writer, shared with run.sh)

ORDER = ["clusterdns", "knot", "nsd", "echo"]
LABEL = {"clusterdns": "clusterdns", "knot": "Knot DNS", "nsd": "NSD", "echo": "echo (ceiling)"}

# Issue 12's acceptance, as (description, kind, peer, comparison, target).
TARGET_UDP_KNOT = 1.0
TARGET_UDP_NSD = 0.9
TARGET_UDP_LOSS_PCT = 0.01
TARGET_CPU_KNOT = 1.0
TARGET_TCP_KNOT = 0.8


# ------------------------------------------------------------------ /proc


def proc_children():
    """Map pid -> [child pids] from /proc/*/stat."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone in the meantime
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def stat_ticks(stat):
    """utime + stime (clock ticks) from one /proc/PID/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    # After "(comm)": state is field 3, so utime (14) and stime (15) are [11] and [12].
    return int(fields[11]) + int(fields[12])


def cputime(pid):
    """CPU seconds (user + system, all threads) of pid and every live descendant.

    NSD serves from a forked child and Knot/clusterdns from threads; summing
    the process tree measures all of them the same way.
    """
    kids = proc_children()
    todo, ticks, seen = [pid], 0, set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                ticks += stat_ticks(f.read())
        except OSError:
            continue
        todo.extend(kids.get(p, []))
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_udp(addr, port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(b"\x12\x34ping", (addr, port))
            if s.recvfrom(512)[0] == b"\x12\x34ping":
                return True
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    return False


# ------------------------------------------------------------------ arithmetic (pure)


def record(parsed, server, rep, kind, c0, c1, t0, t1):
    """One run: dnsperf's counts plus the server's CPU seconds and the wall time."""
    return {
        "server": server, "rep": int(rep), "kind": kind,
        "sent": parsed["sent"], "completed": parsed["completed"], "lost": parsed["lost"],
        "qps": parsed["qps"], "cpu_s": round(c1 - c0, 4), "wall_s": round(t1 - t0, 3),
        "rcodes": parsed["rcodes"],
    }


def cpu_us_per_query(r):
    """Server CPU microseconds per answered query, or None if nothing was answered."""
    return r["cpu_s"] / r["completed"] * 1e6 if r["completed"] else None


def loss_pct(runs):
    """Lost / sent over all the runs, in percent (None without any query sent)."""
    sent = sum(r["sent"] for r in runs)
    return 100.0 * sum(r["lost"] for r in runs) / sent if sent else None


def spread(values):
    """(median, min, max) of the non-None values, or (None, None, None)."""
    v = [x for x in values if x is not None]
    if not v:
        return None, None, None
    return statistics.median(v), min(v), max(v)


def summarize(records):
    """{server: {kind: {"runs", "qps", "loss_pct", "cpu_us", "busy_pct", "ratios"}}}.

    qps and cpu_us are (median, min, max) over repetitions; ratios hold the
    median over repetitions of (this server / Knot in the same repetition) for
    qps and cpu_us, the only like-for-like pairing on a machine whose load drifts.
    """
    by = {}
    for r in records:
        by.setdefault(r["server"], {}).setdefault(r["kind"], []).append(r)
    out = {}
    for s, kinds in by.items():
        out[s] = {}
        for kind, runs in kinds.items():
            runs = sorted(runs, key=lambda r: r["rep"])
            knot = {r["rep"]: r for r in by.get("knot", {}).get(kind, [])}
            qr, cr = [], []
            for r in runs:
                k = knot.get(r["rep"])
                if k and k["qps"] > 0:
                    qr.append(r["qps"] / k["qps"])
                cu, ck = cpu_us_per_query(r), (cpu_us_per_query(k) if k else None)
                if cu is not None and ck:
                    cr.append(cu / ck)
            out[s][kind] = {
                "runs": len(runs),
                "qps": spread([r["qps"] for r in runs]),
                "loss_pct": loss_pct(runs),
                "cpu_us": spread([cpu_us_per_query(r) for r in runs]),
                "busy_pct": spread([100.0 * r["cpu_s"] / r["wall_s"] if r["wall_s"] else None for r in runs]),
                "qps_vs_knot": spread(qr)[0],
                "cpu_vs_knot": spread(cr)[0],
            }
    return out


def ratio(summary, server, peer, kind, field="qps"):
    """median(server) / median(peer) for field of kind, or None."""
    try:
        a = summary[server][kind][field][0]
        b = summary[peer][kind][field][0]
    except KeyError:
        return None
    return a / b if a is not None and b else None


def verdict(value, target, at_least):
    """'met' / 'NOT met' / 'not measured' for value against target."""
    if value is None:
        return "not measured"
    ok = value >= target if at_least else value <= target
    return "met" if ok else "NOT met"


def acceptance(summary, rates):
    """Rows (what, value text, target text, verdict) for issue 12's acceptance, clusterdns's side."""
    rows = []
    udp_k = ratio(summary, "clusterdns", "knot", "udp")
    udp_n = ratio(summary, "clusterdns", "nsd", "udp")
    loss = summary.get("clusterdns", {}).get("udp", {}).get("loss_pct")
    rows.append(("UDP max q/s, clusterdns / Knot DNS (medians)", fx(udp_k), f"≥ {TARGET_UDP_KNOT}×",
                 verdict(udp_k, TARGET_UDP_KNOT, True)))
    rows.append(("UDP max q/s, clusterdns / NSD (medians)", fx(udp_n), f"≥ {TARGET_UDP_NSD}×",
                 verdict(udp_n, TARGET_UDP_NSD, True)))
    rows.append(("UDP loss of clusterdns (lost / sent, all max runs)", fp(loss), f"≤ {TARGET_UDP_LOSS_PCT}%",
                 verdict(loss, TARGET_UDP_LOSS_PCT, False)))
    for rate in rates:
        kind = f"cpu{rate}"
        c = summary.get("clusterdns", {}).get(kind, {}).get("cpu_vs_knot")
        rows.append((f"server CPU per query at {int(rate) // 1000}k q/s, clusterdns / Knot DNS "
                     "(median of same-repetition ratios)", fx(c), f"≤ {TARGET_CPU_KNOT}×",
                     verdict(c, TARGET_CPU_KNOT, False)))
    tcp = ratio(summary, "clusterdns", "knot", "tcp")
    rows.append(("TCP max q/s, clusterdns / Knot DNS (medians)", fx(tcp), f"≥ {TARGET_TCP_KNOT}×",
                 verdict(tcp, TARGET_TCP_KNOT, True)))
    return rows


# ------------------------------------------------------------------ Markdown


def fq(v):
    return "–" if v is None else f"{v:,.0f}"


def fx(v):
    return "–" if v is None else f"{v:.2f}×"


def fp(v):
    return "–" if v is None else f"{v:.3f}%"


def fu(v):
    return "–" if v is None else f"{v:.2f}"


def servers_in(summary):
    return [s for s in ORDER if s in summary]


def throughput_table(summary, kind):
    echo = summary.get("echo", {}).get("udp", {}).get("qps", (None,))[0]
    rows = ["| server | runs | q/s median | min – max | loss (lost / sent) | / Knot DNS | / echo ceiling (UDP) | server core busy |",
            "|---|---|---|---|---|---|---|---|"]
    for s in servers_in(summary):
        d = summary[s].get(kind)
        if not d:
            continue
        med, lo, hi = d["qps"]
        name = f"**{LABEL[s]}**" if s == "clusterdns" else LABEL[s]
        rows.append(f"| {name} | {d['runs']} | {fq(med)} | {fq(lo)} – {fq(hi)} | {fp(d['loss_pct'])} "
                    f"| {fx(ratio(summary, s, 'knot', kind))} | {fx(med / echo if med and echo else None)} "
                    f"| {fu(d['busy_pct'][0])}% |")
    return "\n".join(rows)


def cpu_table(summary, rates):
    head = "| server |"
    sep = "|---|"
    for r in rates:
        k = f"{int(r) // 1000}k"
        head += f" achieved q/s at {k} | loss at {k} | core busy at {k} | CPU µs/query at {k} (min – max) | / Knot DNS at {k} |"
        sep += "---|---|---|---|---|"
    rows = [head, sep]
    for s in servers_in(summary):
        name = f"**{LABEL[s]}**" if s == "clusterdns" else LABEL[s]
        line = f"| {name} |"
        for r in rates:
            d = summary[s].get(f"cpu{r}")
            if not d:
                line += " – | – | – | – | – |"
                continue
            med, lo, hi = d["cpu_us"]
            line += (f" {fq(d['qps'][0])} | {fp(d['loss_pct'])} | {fu(d['busy_pct'][0])}% "
                     f"| {fu(med)} ({fu(lo)} – {fu(hi)}) | {fx(d['cpu_vs_knot'])} |")
        rows.append(line)
    return "\n".join(rows)


def body(records, meta):
    rates = meta["rates"].split()
    summary = summarize(records)
    acc = acceptance(summary, rates)
    lines = [
        "UDP, max rate (`-l %s`):" % meta["duration"], "",
        throughput_table(summary, "udp"), "",
        "TCP, max rate (`-l %s -m tcp`; the echo server is UDP only):" % meta["duration"], "",
        throughput_table(summary, "tcp"), "",
        "Server CPU per answered query at fixed offered rates (`-l %s -Q RATE`; utime+stime of the "
        "server's process tree from /proc/PID/stat before and after the run, divided by the queries "
        "answered; core busy = CPU time / wall time):" % meta["cpu_seconds"], "",
        cpu_table(summary, rates), "",
        "Acceptance (issue 12; targets unchanged):", "",
        "| criterion | measured | target | |", "|---|---|---|---|",
    ]
    for what, val, target, v in acc:
        lines.append(f"| {what} | {val} | {target} | **{v}** |")
    return "\n".join(lines)


def section(records, meta):
    match = meta.get("answers_match") or "–"
    return "\n".join([
        "## fair (same dnsperf settings for every server, issue 12 item 1)",
        "",
        f"Command: `{meta['command']}` ({meta['reps']} interleaved repetitions of: for each of "
        f"{', '.join(meta['servers'].split())}: start, wait for an answer, {meta['warmup']} s warm-up, "
        f"UDP max, TCP max, then {' and '.join(meta['rates'].split())} q/s offered; stop). "
        f"Wall time {meta['elapsed']} s.",
        "",
        f"Every dnsperf run: `{meta['dnsperf']} -l SECONDS [-m tcp | -Q RATE]`; the server under "
        f"`taskset -c {meta['server_cpu']}`, dnsperf under `taskset -c {meta['client_cpu']}`, 127.0.0.1 only.",
        "",
        f"Machine: {meta['nproc']} cores, Linux `{meta['kernel']}`, {meta['cpu']}. "
        f"Load average (1, 5, 15 min): {meta['load']} (other sessions may build on the same cores). "
        f"Date: {meta['date']}.",
        "",
        f"Versions: {meta['versions']}.",
        "",
        f"Cluster: {meta['cluster']}. Knot DNS: 1 UDP, 1 TCP, 1 background worker (as in `load`). "
        "NSD: `server-count: 1`, other settings NSD's defaults, the same zone file. clusterdns: "
        "`kubernetes cluster.local { manifests … }` on the generated manifests, no cache, its default "
        "workers. echo: benches/load/echo.c, recvmmsg/sendmmsg batches of 64, answers each datagram "
        "with itself (no DNS work: the load generator's and loopback's ceiling). "
        f"Sample answers (200 queries, first repetition) equal to Knot's: {match}.",
        "",
        "Loss: dnsperf counts a query lost when no answer came within the timeout (`-t 1.0`, every "
        "server). A lost query still holds one of the 500 outstanding slots for that 1 s (5 s in `load`), "
        "so a server that drops queries also loses rate; the server-core-busy column shows whether a "
        "server was busy or waiting for dnsperf.",
        "",
        body(records, meta),
    ])


def load_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "cputime":
        print(f"{cputime(int(argv[2])):.2f}")
        return 0
    if cmd == "wait_udp":
        return 0 if wait_udp(argv[2], int(argv[3]), float(argv[4])) else 1
    if cmd == "record":
        out, server, rep, kind, c0, c1, t0, t1 = argv[2:10]
        rec = record(report.parse(out), server, rep, kind, float(c0), float(c1), float(t0), float(t1))
        print(json.dumps(rec))
        return 0
    if cmd == "show":
        r = load_records(argv[2])[-1]
        cu = cpu_us_per_query(r)
        print(f"    {r['server']} rep {r['rep']} {r['kind']}: {r['qps']:,.0f} q/s, lost {r['lost']} of "
              f"{r['sent']}, server CPU {r['cpu_s']:.2f} s ({'–' if cu is None else f'{cu:.2f}'} µs/query)")
        return 0
    if cmd == "meta":
        import datetime
        import platform
        e = os.environ
        print(json.dumps({
            "command": e["M_COMMAND"], "nproc": os.cpu_count(), "kernel": platform.release(),
            "cpu": e["M_CPU"], "load": e["M_LOAD"], "date": datetime.date.today().isoformat(),
            "versions": e["M_VERSIONS"], "answers_match": e["M_MATCH"], "dnsperf": e["M_DNSPERF"],
            "elapsed": e["M_ELAPSED"], "servers": e["M_SERVERS"], "reps": e["M_REPS"],
            "duration": e["M_DURATION"], "cpu_seconds": e["M_CPU_SECONDS"], "rates": e["M_RATES"],
            "warmup": e["M_WARMUP"], "server_cpu": e["M_SERVER_CPU"], "client_cpu": e["M_CLIENT_CPU"],
            "cluster": e["M_CLUSTER"],
        }))
        return 0
    if cmd == "table":
        records = load_records(argv[2])
        with open(argv[3]) as f:
            meta = json.load(f)
        print(body(records, meta))
        if len(argv) > 5 and argv[4] == "--write":
            report.write_section(argv[5], section(records, meta), name="fair")
            print(f"\nwrote the fair section of {argv[5]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
