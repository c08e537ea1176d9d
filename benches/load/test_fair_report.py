#!/usr/bin/env python3
"""Table tests of fair_report.py's arithmetic and verdicts (the fair benchmark's report).

Why: the acceptance lines in benches/RESULTS.md come from this arithmetic; a
wrong median, a ratio against the wrong repetition or a verdict with the
comparison the wrong way round would misreport the issue's targets. Not part of
`cargo test` (the benchmark is a script); run with:

    python3 -m unittest discover -s benches/load -p 'test_*.py'

Standard library only.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fair_report as fr  # noqa: E402


def rec(server, rep, kind, qps, sent=1000, lost=0, cpu_s=1.0, wall_s=10.0):
    return {"server": server, "rep": rep, "kind": kind, "sent": sent, "completed": sent - lost,
            "lost": lost, "qps": qps, "cpu_s": cpu_s, "wall_s": wall_s, "rcodes": {}}


class StatTicks(unittest.TestCase):
    def test_fields_after_the_command_name(self):
        # A command name with spaces and ")" must not shift the fields: utime 7 + stime 5.
        line = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 100 0 0"
        self.assertEqual(fr.stat_ticks(line), 12)


class Spread(unittest.TestCase):
    def test_table(self):
        cases = [
            ([], (None, None, None)),
            ([None], (None, None, None)),
            ([3.0], (3.0, 3.0, 3.0)),
            ([5.0, 1.0, 3.0], (3.0, 1.0, 5.0)),
            ([4.0, None, 2.0], (3.0, 2.0, 4.0)),
        ]
        for values, want in cases:
            with self.subTest(values=values):
                self.assertEqual(fr.spread(values), want)


class LossAndCpu(unittest.TestCase):
    def test_loss_is_pooled_over_runs(self):
        runs = [rec("k", 1, "udp", 1, sent=1000, lost=10), rec("k", 2, "udp", 1, sent=3000, lost=0)]
        self.assertAlmostEqual(fr.loss_pct(runs), 0.25)
        self.assertIsNone(fr.loss_pct([]))

    def test_cpu_per_answered_query(self):
        self.assertAlmostEqual(fr.cpu_us_per_query(rec("k", 1, "cpu", 1, sent=1100, lost=100, cpu_s=0.5)), 500.0)
        self.assertIsNone(fr.cpu_us_per_query(rec("k", 1, "cpu", 0, sent=10, lost=10)))


class Summarize(unittest.TestCase):
    def test_ratios_pair_the_same_repetition(self):
        # clusterdns is 2x Knot's rate in rep 1 and 1x in rep 2 and 3 -> median 1.0;
        # the ratio of medians would also be 1.0 here, so CPU uses different numbers:
        # per-rep CPU ratios 0.5, 2.0, 1.5 -> median 1.5.
        records = []
        for rep, (cq, kq, ccpu, kcpu) in enumerate([(200, 100, 1.0, 2.0), (100, 100, 2.0, 1.0), (150, 150, 3.0, 2.0)], 1):
            records.append(rec("clusterdns", rep, "udp", cq, cpu_s=ccpu))
            records.append(rec("knot", rep, "udp", kq, cpu_s=kcpu))
        s = fr.summarize(records)
        self.assertEqual(s["clusterdns"]["udp"]["qps"], (150, 100, 200))
        self.assertAlmostEqual(s["clusterdns"]["udp"]["qps_vs_knot"], 1.0)
        self.assertAlmostEqual(s["clusterdns"]["udp"]["cpu_vs_knot"], 1.5)
        self.assertEqual(s["clusterdns"]["udp"]["runs"], 3)

    def test_no_knot_means_no_ratio(self):
        s = fr.summarize([rec("clusterdns", 1, "udp", 100)])
        self.assertIsNone(s["clusterdns"]["udp"]["qps_vs_knot"])
        self.assertIsNone(fr.ratio(s, "clusterdns", "knot", "udp"))


class Verdict(unittest.TestCase):
    def test_table(self):
        cases = [
            (1.0, 1.0, True, "met"),
            (0.99, 1.0, True, "NOT met"),
            (1.0, 1.0, False, "met"),
            (1.01, 1.0, False, "NOT met"),
            (None, 1.0, True, "not measured"),
        ]
        for value, target, at_least, want in cases:
            with self.subTest(value=value, target=target, at_least=at_least):
                self.assertEqual(fr.verdict(value, target, at_least), want)


class Acceptance(unittest.TestCase):
    def test_all_rows_against_the_issue_targets(self):
        records = [
            rec("clusterdns", 1, "udp", 180, sent=100000, lost=20),  # 0.02% lost
            rec("knot", 1, "udp", 200),
            rec("nsd", 1, "udp", 190),
            rec("clusterdns", 1, "cpu20000", 1, cpu_s=1.0),
            rec("knot", 1, "cpu20000", 1, cpu_s=1.0),
            rec("clusterdns", 1, "tcp", 90),
            rec("knot", 1, "tcp", 100),
        ]
        rows = fr.acceptance(fr.summarize(records), ["20000", "80000"])
        got = [(what.split(",")[0], val, v) for what, val, _target, v in rows]
        self.assertEqual(got, [
            ("UDP max q/s", "0.90×", "NOT met"),        # vs Knot, target 1.0
            ("UDP max q/s", "0.95×", "met"),            # vs NSD, target 0.9
            ("UDP loss of clusterdns (lost / sent", "0.020%", "NOT met"),
            ("server CPU per query at 20k q/s", "1.00×", "met"),
            ("server CPU per query at 80k q/s", "–", "not measured"),
            ("TCP max q/s", "0.90×", "met"),
        ])


class Section(unittest.TestCase):
    def test_write_section_replaces_only_its_block(self):
        import tempfile

        import report
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "R.md")
            with open(p, "w") as f:
                f.write("# R\n<!-- BEGIN load -->\nL\n<!-- END load -->\n\n## Analysis\nA\n")
            report.write_section(p, "F1", name="fair")
            report.write_section(p, "F2", name="fair")
            text = open(p).read()
        self.assertEqual(text, "# R\n<!-- BEGIN load -->\nL\n<!-- END load -->\n"
                               "<!-- BEGIN fair -->\nF2\n<!-- END fair -->\n\n## Analysis\nA\n")


if __name__ == "__main__":
    unittest.main()
