"""The registry of scenarios, in the order they run."""

from __future__ import annotations

from bench.b1_ingress import B1
from bench.b2_pipeline import B2
from bench.b3_kafka import B3
from bench.b4_cron import B4
from bench.b5_controller import B5
from bench.b6_burst import B6
from bench.b7_filters import B7
from bench.b8_cluster import B8
from bench.common import Scenario

SCENARIOS: dict[str, Scenario] = {s.id: s for s in (B1(), B2(), B3(), B4(), B5(), B6(), B7(), B8())}
