"""``python -m bench [--quick] [--pairs N] [SCENARIO...]``: run, print the table, write the JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import RESULTS, Row, environment, run_worker
from bench.scenarios import SCENARIOS

HEADER = ("id", "scenario", "baseline", "candidate", "ratio", "goal", "met")


def _met(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def table(rows: list[Row]) -> str:
    """The results as a Markdown table (what docs/performance.md shows)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        cells = (row.id, row.scenario, row.baseline, row.candidate, ratio, row.goal, _met(row.met))
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def run_scenario(key: str, quick: bool, pairs_override: int | None) -> tuple[list[Row], dict[str, Any]]:
    scenario = SCENARIOS[key]
    pairs, round_ = scenario.plan(quick)
    if pairs_override is not None:
        pairs = pairs_override
    timeout = float(getattr(scenario, "worker_timeout", 300.0))
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant, _ in round_}
    order: list[str] = []
    started = time.monotonic()
    for index in range(pairs):
        for variant, params in round_:
            if index >= int(params.get("max_pairs", pairs)):
                continue
            print(f"  {key} pair {index + 1}/{pairs}: {variant} ...", file=sys.stderr, flush=True)
            result = run_worker(key, variant, params, timeout)
            if "error" in result:
                print(f"  {key}/{variant}: {result['error']}", file=sys.stderr, flush=True)
            runs[variant].append(result)
            order.append(variant)
    errors = [r["error"] for results in runs.values() for r in results if "error" in r]
    try:
        rows = scenario.summarize({v: [r for r in rs if "error" not in r] for v, rs in runs.items()}, quick)
    except Exception as exc:  # one broken summary must not lose the others
        rows = [Row(key, scenario.title, "", "", None, "", None, {"error": f"summary failed: {exc!r}"})]
    if errors:
        for row in rows:
            row.details.setdefault("worker_errors", errors)
    record = {
        "id": key,
        "title": scenario.title,
        "pairs": pairs,
        "order": order,
        "seconds": round(time.monotonic() - started, 1),
        "runs": runs,
    }
    return rows, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes and one pair (smoke test)")
    parser.add_argument("--pairs", type=int, default=None, help="override the number of A/B pairs")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"), help="where to write the JSON")
    args = parser.parse_args(argv)
    wanted = [s.upper() for s in args.scenarios] or list(SCENARIOS)
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    started = time.monotonic()
    all_rows: list[Row] = []
    records: list[dict[str, Any]] = []
    for key in wanted:
        print(f"{key}: {SCENARIOS[key].title}", file=sys.stderr, flush=True)
        rows, record = run_scenario(key, args.quick, args.pairs)
        all_rows += rows
        records.append(record)
    rendered = table(all_rows)
    print(rendered)
    output = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(time.monotonic() - started, 1),
        "environment": environment(),
        "rows": [row.as_dict() for row in all_rows],
        "table": rendered,
        "scenarios": records,
    }
    from pathlib import Path

    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output, indent=1, default=str))
    path.with_suffix(".md").write_text(rendered + "\n")
    print(f"\nwrote {path} ({output['seconds']}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
