"""Smoke test of the benchmark runner: ``python -m bench --quick B7`` prints the table and writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_b7_prints_table_and_writes_json(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "B7", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "| id | scenario | baseline | candidate | ratio | goal | met |"
    b7 = [line for line in lines if line.startswith("| B7 | filter chain")]
    assert len(b7) == 1
    cells = [cell.strip() for cell in b7[0].strip("|").split("|")]
    assert cells[4].endswith("x") and float(cells[4][:-1]) > 0
    assert cells[6] in ("yes", "**no**")

    result = json.loads(output.read_text())
    assert result["quick"] is True
    assert result["environment"]["python"].startswith("3.")
    assert result["environment"]["cpu"]
    assert "aiohttp" in result["environment"]["libraries"]
    rows = [row for row in result["rows"] if row["id"] == "B7"]
    assert rows and rows[0]["ratio"] > 0 and isinstance(rows[0]["met"], bool)
    assert result["table"] in done.stdout
    assert output.with_suffix(".md").read_text().strip() == result["table"]
    (scenario,) = result["scenarios"]
    assert scenario["order"] == ["json", "chain"]
    assert all("us" in run for runs in scenario["runs"].values() for run in runs)
