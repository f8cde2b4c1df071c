"""The pipeline benchmark's CPU accounting (the benchmark itself runs on real services)."""

import os
import time

from tools.model.bench import status_mib
from tools.stream.bench import cpu_seconds, cpu_share

ME = "bench (producer, polling)"


def test_cpu_share_counts_this_process_and_leaves_the_rest_idle():
    before = cpu_seconds()
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    share = cpu_share(before, cpu_seconds(), wall=0.3)
    cores = os.cpu_count() or 1
    assert 0.5 / cores < share[ME] <= 1.5 / cores
    assert 0 <= share["idle"] <= 1 and list(share.values()) == sorted(share.values(), reverse=True)


def test_peak_rss_is_the_high_water_mark_of_a_live_process():
    import subprocess
    import sys

    grow = "b = bytearray(80 << 20); b[::4096] = b'x' * len(b[::4096]); del b; input()"
    proc = subprocess.Popen([sys.executable, "-c", grow], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while (peak := status_mib("VmHWM", proc.pid) or 0.0) < 80 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 80 <= peak < 80 + 100  # the buffer, freed since, plus an interpreter
    finally:
        proc.communicate(b"\n", timeout=30)
    assert status_mib("VmHWM", proc.pid) is None  # reaped: nothing to read


def test_cpu_share_of_known_totals():
    share = cpu_share(
        {"kafka": 1.0}, {"kafka": 3.0, "workers": 4.0}, wall=10 / (os.cpu_count() or 1)
    )
    assert share == {"workers": 0.4, "kafka": 0.2, "idle": 0.4}


def test_scorer_alone_keeps_batches_in_flight_like_a_worker():
    import threading

    from prometheus_client import CollectorRegistry

    from stream.metrics import StreamMetrics
    from stream.scoring import BatchScorer
    from tools.stream.bench import scorer_throughput

    seen: dict[str, int] = {"now": 0, "most": 0, "calls": 0}
    lock = threading.Lock()

    class Slow:
        version = "v1"

        def predict(self, texts):
            with lock:
                seen["now"] += 1
                seen["calls"] += 1
                seen["most"] = max(seen["most"], seen["now"])
            time.sleep(0.02)
            with lock:
                seen["now"] -= 1
            return []

    class Source:
        def champion_version(self):
            return "v1"

        def load(self, version):
            return Slow()

    scorer = BatchScorer(Source(), StreamMetrics(CollectorRegistry()))
    scorer.refresh(force=True)
    out = scorer_throughput(scorer, ["t"] * 40, batch=4, in_flight=3, passes=3)
    assert seen["calls"] == 1 + 3 * 10 and seen["most"] == 3  # warm-up + 3 passes of 10
    assert len(out["passes"]) == 3 and out["articles_per_s"] == sorted(out["passes"])[1]
    assert out["articles_per_cpu_s"] > out["articles_per_s"]  # sleeping costs no CPU
