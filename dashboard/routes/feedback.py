"""``/api/feedback``: store a corrected topic or sentiment for ``finpulse retrain``."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException

from dashboard import schemas
from dashboard.routes.common import fits
from dashboard.services import Services


def add_routes(app: FastAPI, s: Services) -> None:
    """Label corrections, checked against the stored article."""

    @app.post(
        "/api/feedback", response_model=schemas.FeedbackOut, status_code=201, tags=["feedback"]
    )
    def feedback(body: schemas.FeedbackIn) -> schemas.FeedbackOut:
        """Correct an article's topic or sentiment; ``finpulse retrain --feedback`` reads it."""
        found = s.store.get(body.article_id) if fits(body.article_id) else None
        if found is None:
            raise HTTPException(404, f"no article with id {body.article_id!r}")
        predicted = found.topic if body.task == "topic" else found.sentiment.value
        row = s.feedback.append(
            text=found.text,
            task=body.task,
            label=body.label,
            article_id=found.id,
            predicted=predicted,
            model_version=found.model_version,
            comment=body.comment,
        )
        return schemas.FeedbackOut(
            stored=True,
            task=row["task"],
            label=row["label"],
            predicted=predicted,
            feedback_rows=s.feedback.count(),
        )
