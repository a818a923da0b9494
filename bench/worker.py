"""Runs one variant of one scenario in this fresh process: ``python -m bench.worker '<json>'``.

The JSON is ``{"scenario": "B1", "variant": "bare", "params": {...}}``; the result is printed as
one JSON line (the last line of stdout).
"""

from __future__ import annotations

import asyncio
import json
import sys

from bench.common import quiet_logging
from bench.scenarios import SCENARIOS


def main() -> None:
    spec = json.loads(sys.argv[1])
    quiet_logging()
    scenario = SCENARIOS[spec["scenario"]]
    result = asyncio.run(scenario.run(spec["variant"], spec["params"]))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
