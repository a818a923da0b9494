"""The fuzz tests import fuzz_helpers from this folder and the e2e harness (a real `eventbridge up`)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS / "fuzz", _TESTS / "e2e"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
