"""Errors more than one stage raises and catches, defined once so every stage means the same."""

from pydantic import ValidationError


class DeliveryError(Exception):
    """Something could not be handed on (an article to Kafka, an alert to a notifier).

    The sender kept it: the crawler tries the article again, the alert outbox retries the
    notification. Raise it with a message that says where and why.
    """


def invalid_fields(exc: ValidationError, *, with_field: bool = True) -> str:
    """A pydantic error as one line ("field: why; ..."), since CLI errors are one line."""
    return "; ".join(
        (f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: " if with_field else "")
        + str(e["msg"]).removeprefix("Value error, ")
        for e in exc.errors()
    )
