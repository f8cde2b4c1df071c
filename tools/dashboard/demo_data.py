"""The demo's news: real tweets with a negative episode spliced in, or a generated stand-in.

With the shared data present, the stream is the sentiment validation tweets (never used
for training) in a fixed shuffled order, with a burst of Bearish ones starting
``burst_at`` rows in. Without it, the project generates headlines from templates, labeled
so they can also train a small model, and says so.

>>> rows = generated_rows(seed=1)
>>> sorted({r["sentiment"] for r in rows})
['negative', 'neutral', 'positive']
>>> stream = splice_episode(rows, burst_at=10, burst_len=8, negative_share=1.0)
>>> [r["sentiment"] for r in stream[10:18]] == ["negative"] * 8
True
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SENTIMENT_FILE = Path("twitter-fin-sentiment/sent_valid.csv")

COMPANIES = [
    ("Acme Corp", "ACME"),
    ("Globex", "GLBX"),
    ("Initech", "INIT"),
    ("Umbrella Group", "UMBR"),
    ("Stark Industries", "STRK"),
    ("Wayne Enterprises", "WAYN"),
    ("Hooli", "HOOL"),
    ("Soylent Foods", "SOYL"),
]
# (topic, sentiment, headline template): {c} company, {t} ticker, {p} a percentage.
TEMPLATES = [
    ("Earnings", "negative", "${t} {c} misses quarterly earnings estimates, revenue falls {p}%"),
    ("Earnings", "positive", "${t} {c} beats earnings estimates as profit jumps {p}%"),
    ("Earnings", "neutral", "${t} {c} to report quarterly results on Thursday"),
    ("Analyst Update", "negative", "${t} {c} downgraded to sell, price target cut {p}%"),
    ("Analyst Update", "positive", "${t} {c} upgraded to buy with {p}% upside"),
    ("Analyst Update", "neutral", "${t} analyst keeps {c} at hold"),
    ("Stock Movement", "negative", "${t} {c} shares plunge {p}% after profit warning"),
    ("Stock Movement", "positive", "${t} {c} shares jump {p}% to a record high"),
    ("Dividend", "negative", "${t} {c} suspends its dividend to preserve cash"),
    ("Dividend", "positive", "${t} {c} raises quarterly dividend by {p}%"),
    ("Dividend", "neutral", "${t} {c} declares regular quarterly dividend"),
    ("Legal | Regulation", "negative", "${t} {c} faces regulator probe over accounting"),
    ("Legal | Regulation", "neutral", "${t} {c} files annual report with the regulator"),
    ("M&A | Investments", "positive", "${t} {c} agrees to buy rival in {p} billion deal"),
    ("M&A | Investments", "neutral", "${t} {c} says it is reviewing strategic options"),
    ("Personnel Change", "neutral", "${t} {c} names new chief financial officer"),
    ("Personnel Change", "negative", "${t} {c} chief executive resigns amid losses"),
    ("Company | Product News", "positive", "${t} {c} wins major contract, launches new product"),
    ("Company | Product News", "negative", "${t} {c} recalls product, cuts {p}% of jobs"),
    ("Macro", "negative", "Inflation rises {p}%, recession fears grow"),
    ("Macro", "positive", "Economy grows {p}% as jobs growth beats forecasts"),
    ("Macro", "neutral", "Jobs report due Friday, economists expect steady growth"),
    ("Fed | Central Banks", "neutral", "Fed holds interest rates steady, says policy on track"),
    ("Fed | Central Banks", "negative", "Fed signals more rate hikes as inflation stays high"),
    ("Markets", "negative", "Stocks tumble {p}% as markets sell off"),
    ("Markets", "positive", "Stocks rally {p}% as markets hit record"),
    ("Energy | Oil", "negative", "Oil prices slump {p}% on weak demand"),
    ("Energy | Oil", "positive", "Oil prices climb {p}% as supply tightens"),
]


@dataclass(frozen=True)
class DemoStream:
    rows: list[dict[str, str]]
    origin: str  # what the stream was made from, for the user
    burst: range  # rows of the negative episode


def generated_rows(n: int = 600, seed: int = 0) -> list[dict[str, str]]:
    """Template headlines, each with its topic and sentiment label."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        topic, sentiment, template = rng.choice(TEMPLATES)
        company, ticker = rng.choice(COMPANIES)
        text = template.format(c=company, t=ticker, p=rng.randint(2, 30))
        rows.append({"text": text, "topic": topic, "sentiment": sentiment})
    return rows


def read_sentiment_rows(data_dir: Path) -> list[dict[str, str]] | None:
    """The validation tweets with their sentiment (the data dir's, else the copy shipped in
    the model package), or None when neither is there."""
    from model.data import load_labeled, resolve_file

    path = Path(resolve_file(data_dir, SENTIMENT_FILE.as_posix()))
    if not path.is_file():
        return None
    data = load_labeled(path, "sentiment", split="valid")
    return [{"text": t, "sentiment": y} for t, y in zip(data.texts, data.labels, strict=True)]


def splice_episode(
    rows: list[dict[str, str]],
    *,
    burst_at: int,
    burst_len: int,
    negative_share: float = 0.9,
    seed: int = 7,
) -> list[dict[str, str]]:
    """Shuffle ``rows`` and move negative rows together into ``[burst_at, burst_at+len)``."""
    rng = random.Random(seed)
    negative = [r for r in rows if r["sentiment"] == "negative"]
    other = [r for r in rows if r["sentiment"] != "negative"]
    rng.shuffle(negative)
    rng.shuffle(other)
    n_neg = min(len(negative), round(burst_len * negative_share))
    burst = negative[:n_neg] + other[: burst_len - n_neg]
    rng.shuffle(burst)
    calm = negative[n_neg:] + other[burst_len - n_neg :]
    rng.shuffle(calm)
    return calm[:burst_at] + burst + calm[burst_at:]


def demo_stream(data_dir: Path, *, burst_at: int, burst_len: int) -> DemoStream:
    from model.data import resolve_file

    rows = read_sentiment_rows(data_dir)
    source = resolve_file(data_dir, SENTIMENT_FILE.as_posix())
    origin = f"{source} (validation tweets, not used in training)"
    if rows is None:
        rows = generated_rows()
        origin = f"generated headlines ({data_dir} not found)"
    spliced = splice_episode(rows, burst_at=burst_at, burst_len=burst_len)
    return DemoStream(spliced, origin, range(burst_at, burst_at + burst_len))


def write_jsonl(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n")
    return path
