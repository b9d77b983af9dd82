#!/usr/bin/python3
"""Formats bench/orm_bench.sh's runs as a Markdown table (issue 18).

    orm_report.py RUNS_DIR   # RUNS_DIR/<name>.json (summary), <name>.m0/.m1 (/metrics)

Each run: <workload>-<mode>, mode `on` (pgregion's default: optimistic transactions) or
`off` (startup options=-c pgregion.optimistic=off: every transaction on the primary, the
baseline). Reads the programs' JSON summaries (tests/drivers/python/workload_common.py)
and the difference of the optimistic metrics between the two scrapes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def counters(path: Path) -> dict[str, float]:
    """'name{labels}' -> value for pgregion's optimistic and routing counters."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        m = re.match(r"^(pgregion_optimistic_\w+|pgregion_routed_total)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def delta(run: Path) -> dict[str, float]:
    a, b = counters(run.with_suffix(".m0")), counters(run.with_suffix(".m1"))
    return {k: v - a.get(k, 0.0) for k, v in b.items() if v - a.get(k, 0.0)}


def label(key: str, name: str) -> str:
    m = re.search(name + r'="([^"]*)"', key)
    return m.group(1) if m else "?"


def main() -> int:
    runs_dir = Path(sys.argv[1])
    rows = []
    baseline_rw = {}
    runs = sorted(runs_dir.glob("*.json"), key=lambda p: (p.stem.split("-")[0],
                                                          p.stem.endswith("-on")))
    for run in runs:  # the "off" run of each workload first: the baseline
        workload, mode = run.stem.rsplit("-", 1)
        try:
            s = json.loads(run.read_text())
        except (OSError, ValueError) as e:
            rows.append(f"| {workload} | {mode} | no summary ({e}) |" + " |" * 12)
            continue
        d = delta(run)
        started = sum(v for k, v in d.items() if "transactions_total" in k
                      and label(k, "outcome") == "started")
        moved = sum(v for k, v in d.items() if "transactions_total" in k
                    and label(k, "outcome") == "moved")
        mismatch = sum(v for k, v in d.items() if "transactions_total" in k
                       and label(k, "outcome") == "mismatch")
        n_moves = d.get("pgregion_optimistic_move_seconds_count", 0.0)
        move_ms = (f"{1000.0 * d.get('pgregion_optimistic_move_seconds_sum', 0.0) / n_moves:.1f}"
                   if n_moves else "-")
        reasons = ", ".join(f"{label(k, 'reason')} {int(v)}" for k, v in sorted(d.items())
                            if "moves_total" in k) or "-"
        ro, rw = s["kinds"]["read_only"], s["kinds"]["read_write"]
        if mode == "off":
            baseline_rw[workload] = rw
        base = baseline_rw.get(workload)
        added = (f"{rw['p50_ms'] - base['p50_ms']:+.1f} / {rw['p99_ms'] - base['p99_ms']:+.1f}"
                 if mode == "on" and base and base["count"] and rw["count"] else "-")
        share = 100.0 * s["read_only_on_replica"] / s["read_only_units"] \
            if s["read_only_units"] else 0.0
        errors = f" ({len(s['errors'])} client errors: {s['errors'][0][:80]})" \
            if s["errors"] else ""
        rows.append(
            f"| {workload} | {mode}{errors} | {s['units']} | {s['read_only_units']} | "
            f"{share:.1f}% | {s['wrong_results']} | {s['serialization_failures']} "
            f"({s['retries']} retried) | {int(started)} / {int(moved)} / {int(mismatch)} | "
            f"{reasons} | {ro['p50_ms']:.1f} / {ro['p99_ms']:.1f} | "
            f"{rw['p50_ms']:.1f} / {rw['p99_ms']:.1f} | {move_ms} | {added} |")
    print("| workload | optimistic | units | read-only | read-only on a replica | wrong results "
          "| 40001 | optimistic started / moved / mismatch | moves by reason "
          "| read-only p50 / p99 ms | read-write p50 / p99 ms "
          "| move time avg ms (pgregion_optimistic_move_seconds) "
          "| read-write added vs off, p50 / p99 ms |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
