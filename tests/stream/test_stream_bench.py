"""The pipeline benchmark's CPU accounting (the benchmark itself runs on real services)."""

import os
import time

from stream.bench import cpu_seconds, cpu_share

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


def test_cpu_share_of_known_totals():
    share = cpu_share(
        {"kafka": 1.0}, {"kafka": 3.0, "workers": 4.0}, wall=10 / (os.cpu_count() or 1)
    )
    assert share == {"workers": 0.4, "kafka": 0.2, "idle": 0.4}
