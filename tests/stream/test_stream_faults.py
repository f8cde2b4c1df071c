"""The key scenarios of ``finpulse bench faults`` as tests CI runs, on the real services.

One sandbox and worker for the module (a worker start is most of the cost); each scenario
marks its articles with its own source, so they share the index without seeing each other.
The broker restart under ``finpulse replay`` stops and starts the real Kafka for ~10 s.
Elasticsearch's outage and the broker restart under a worker stay in the bench
(``finpulse bench faults``): an Elasticsearch restart alone takes a minute or more here.
"""

from __future__ import annotations

import pytest

from app.settings import Settings
from tools.stream.faults import SCENARIOS, Faults, configured

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CI_SCENARIOS = [
    "poison_malformed",
    "poison_contract",
    "poison_oversize",
    "poison_id_too_long",
    "poison_far_future",
    "kill9_worker",
    "broker_restart_under_replay",
]


@pytest.fixture(scope="module")
def faults(tmp_path_factory, kafka_bootstrap, elasticsearch_url):
    workdir = tmp_path_factory.mktemp("faults")
    settings = Settings(kafka={"bootstrap_servers": kafka_bootstrap},
                        elasticsearch={"url": elasticsearch_url})  # fmt: skip
    f = Faults(configured(settings, workdir), workdir)
    try:
        f.start_worker()
        f.wait_worker_ready()
        yield f
    finally:
        f.close()


@pytest.mark.parametrize("name", CI_SCENARIOS)
def test_scenario_loses_nothing_and_dead_letters_every_poison(faults, name):
    faults.ensure_worker()
    outcome = SCENARIOS[name](faults)
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
    assert outcome.stored_distinct == outcome.sent > 0, outcome
    assert outcome.dead_lettered == outcome.expected_dead_letters, outcome
    assert outcome.passed, outcome
