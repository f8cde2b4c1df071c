"""Errors more than one stage raises and catches, defined once so every stage means the same."""


class DeliveryError(Exception):
    """Something could not be handed on (an article to Kafka, an alert to a notifier).

    The sender kept it: the crawler tries the article again, the alert outbox retries the
    notification. Raise it with a message that says where and why.
    """
