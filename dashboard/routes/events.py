"""``/api/events``: the page's live feed as server-sent events (see ``dashboard.events``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from dashboard.events import EventStream


def add_routes(app: FastAPI) -> None:
    """The server-sent event stream (its clients share ``app.state.events``)."""

    @app.get(
        "/api/events",
        tags=["live"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: ``update`` whenever articles arrive or the firing set changes."""
        stream: EventStream = request.app.state.events

        async def body() -> AsyncIterator[str]:
            async for chunk in stream.follow():
                if await request.is_disconnected():
                    return
                yield chunk

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
