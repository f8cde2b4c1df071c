"""Container healthcheck: a role is healthy while its Prometheus endpoint answers.

Each long-running role serves /metrics on its own port (worker ``metrics.port``, alerter
``stream.alerter_port``, crawler ``ingest.metrics_port``, api ``api.metrics_port``); a wedged
event loop stops answering, which is exactly when the orchestrator should restart it. The role
is the ``finpulse`` subcommand of PID 1 (or the first argument), and the port comes from the
settings that role reads, so the check never drifts from config. Roles without a listener
(retrain, one-off commands) pass.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings, load_settings

PORTS: dict[str, Callable[[Settings], int]] = {
    "worker": lambda s: s.metrics.port,
    "alerter": lambda s: s.stream.alerter_port,
    "crawl": lambda s: s.ingest.metrics_port,
    "serve": lambda s: s.api.metrics_port,
}


def container_role() -> str | None:
    """The first known role among PID 1's arguments (``finpulse worker ...``).

    PID 1 of this container: in a Pod of several containers (serve beside the alerter) each has
    its own, as long as the Pod does not set ``shareProcessNamespace``.
    """
    args = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    return next((a for a in args if a in PORTS), None)


def main(argv: list[str]) -> int:
    role = argv[0] if argv else container_role()
    if role not in PORTS:
        return 0
    url = f"http://127.0.0.1:{PORTS[role](load_settings())}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy {role}: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
