"""Schemathesis hooks for the API fuzzer (loaded by ``st run`` through SCHEMATHESIS_HOOKS).

They teach the fuzzer the API's cross-field rules, the ones JSON Schema cannot state and
each operation's description does (``since`` before ``until``; a silence ends after it
starts), and how to write a valid silence matcher (the ``alertmanager-matcher`` format).
Nothing else is filtered: every other limit is in the schema itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis
from hypothesis import strategies as st

from alerts.silences import LABELS
from dashboard.schemas import MATCHER_FORMAT

_RES = st.sampled_from(["AAPL|MSFT", "A.*", "(A+)+$", "[a-z]{1,3}", "", ".*", "x?y*z+"])
_VALUES = st.text(max_size=100)
schemathesis.openapi.format(
    MATCHER_FORMAT,
    st.one_of(
        st.builds("{}{}{}".format, st.sampled_from(LABELS), st.sampled_from(["=", "!="]), _VALUES),
        st.builds("{}{}{}".format, st.sampled_from(LABELS), st.sampled_from(["=~", "!~"]), _RES),
    ),
)


def _time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).upper())
    except ValueError:
        return None  # not a date-time: a negative case, left to the API to refuse
    return parsed if parsed.tzinfo else None


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    """``since`` before ``until`` when both are given (articles, rates); a silence's
    ``ends_at`` after its start (``starts_at``, else now)."""
    query = case.query if isinstance(case.query, dict) else {}
    since, until = _time(query.get("since")), _time(query.get("until"))
    if since is not None and until is not None and since >= until:
        return False
    body = case.body if isinstance(case.body, dict) else {}
    end = _time(body.get("ends_at"))
    start = _time(body.get("starts_at")) or datetime.now(UTC)
    return end is None or end > start
