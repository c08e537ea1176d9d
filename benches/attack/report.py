#!/usr/bin/env python3
"""Summarise benches/attack/run.sh: medians of undisturbed and attacked runs,
loss beside throughput, RSS during the attack; print the RESULTS.md section
and, with --write FILE, replace that section in FILE (between the
`<!-- attack:begin -->` and `<!-- attack:end -->` markers, appended if absent).

Standard library only; reads what run.sh wrote, no I/O beyond that.
"""

import json
import os
import statistics
import sys

BEGIN, END = "<!-- attack:begin -->", "<!-- attack:end -->"


def section(runs, e):
    base = [r for r in runs if r["kind"] == "undisturbed"]
    hit = [r for r in runs if r["kind"] == "attacked"]
    med = lambda rs, f: statistics.median(f(r) for r in rs)
    qps_b, qps_a = med(base, lambda r: r["run"]["qps"]), med(hit, lambda r: r["run"]["qps"])
    loss = lambda r: 100.0 * r["run"]["lost"] / max(1, r["run"]["sent"])
    ratio = qps_a / qps_b if qps_b else 0.0
    rss = max(r["rss_max_kib"] for r in hit)
    lines = [
        BEGIN,
        "## Under attack: idle TCP connections + malformed packets (issue 8 item 8)",
        "",
        f"Legitimate UDP queries/s with and without {e['M_ATTACK']}. Target: attacked ≥ 80% of undisturbed.",
        "",
        "| run | queries/s (median) | lost (median) | per repetition (q/s, lost %) |",
        "| --- | ---: | ---: | --- |",
        f"| undisturbed | {qps_b:,.0f} | {med(base, loss):.2f}% | "
        + ", ".join(f"{r['run']['qps']:,.0f} ({loss(r):.2f}%)" for r in base) + " |",
        f"| attacked | {qps_a:,.0f} | {med(hit, loss):.2f}% | "
        + ", ".join(f"{r['run']['qps']:,.0f} ({loss(r):.2f}%)" for r in hit) + " |",
        "",
        f"**Attacked / undisturbed: {100 * ratio:.0f}%** (target ≥ 80%: {'met' if ratio >= 0.8 else 'NOT met'}). "
        f"Server RSS: {int(e['M_RSS_IDLE']) / 1024:.0f} MiB after warm-up, at most {rss / 1024:.0f} MiB during the attacks.",
        "",
        "Attacker per repetition (connections opened / closed by the server / fewest open in any second / malformed packets sent): "
        + "; ".join(
            f"{a['opened']} / {a['closed_by_server']} / {a['min_open']} / {a['sent']}"
            for a in (r["attacker"] for r in hit)
        ) + ".",
        "",
        f"- Command: `{e['M_COMMAND']}`; {e['M_SETTINGS']}; {len(base)} interleaved repetitions (undisturbed, then attacked).",
        f"- {e['M_VERSION']}, dnsperf {e['M_DNSPERF']}, {e['M_CPU']}; load average {e['M_LOAD']}.",
        "- Absolute rates depend on the machine and on whatever else runs on it (the load average above "
        "says how busy it was); the ratio of interleaved runs is the number to read.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main():
    runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    text = section(runs, os.environ)
    print(text)
    if len(sys.argv) > 3 and sys.argv[2] == "--write":
        path = sys.argv[3]
        old = open(path).read() if os.path.exists(path) else ""
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            new = head + text.rstrip("\n") + rest.split(END, 1)[1]
        else:
            new = old.rstrip("\n") + "\n\n" + text
        open(path, "w").write(new)


if __name__ == "__main__":
    main()
