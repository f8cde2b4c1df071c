"""Where articles go. ``send`` returns only once the article is durably handed off, because
the crawler marks an article seen only after that: a crash in between re-produces it.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from types import TracebackType

from finpulse.contracts import Article
from finpulse.errors import DeliveryError


class Sink(ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once before the first ``send``."""

    @abstractmethod
    async def send(self, article: Article) -> None:
        """Deliver one article; return when it is safe, or raise :class:`DeliveryError`."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush what is pending and release connections."""

    async def __aenter__(self) -> Sink:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class CallbackSink(Sink):
    """Hands each article to a function, sync or async: the embedded runner's way in.

    >>> import asyncio
    >>> queue = asyncio.Queue()
    >>> sink = CallbackSink(queue.put)   # the runner consumes articles from the queue
    """

    def __init__(self, callback: Callable[[Article], Awaitable[object] | object]) -> None:
        self._callback = callback

    async def send(self, article: Article) -> None:
        try:
            result = self._callback(article)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise DeliveryError(f"callback refused {article.id}: {exc}") from exc
