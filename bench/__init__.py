"""Benchmarks B1-B7 (issue 8): each scenario and its baseline, interleaved in the same run.

Run from the repository root::

    python -m bench            # every scenario, full sizes (about 10 minutes on 2 cores)
    python -m bench --quick    # small sizes, one pair (a smoke test; about a minute)
    python -m bench B1 B7      # only these scenarios

Every variant (baseline or candidate) runs in a fresh worker process (``bench.worker``); load
generators are separate processes again (``bench.loadgen``). The table goes to stdout and, with
the environment, to ``bench/results/latest.json``.
"""
