"""The two tasks' label sets, the data sets' id -> name maps, and default label descriptions.

>>> normalize_label("sentiment", "Bearish"), normalize_label("sentiment", 1)
('negative', 'positive')
>>> normalize_label("topic", "17")
'Personnel Change'
"""

from __future__ import annotations

TASKS = ("topic", "sentiment")

# Id order of zeroshot/twitter-financial-news-topic (verified in ../shared/data README).
TOPICS = [
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
]
SENTIMENTS = ["negative", "neutral", "positive"]
LABELS = {"topic": TOPICS, "sentiment": SENTIMENTS}

# zeroshot/twitter-financial-news-sentiment ids: 0 Bearish, 1 Bullish, 2 Neutral.
_SENTIMENT_IDS = {0: "negative", 1: "positive", 2: "neutral"}
_SENTIMENT_SYNONYMS = {
    "bearish": "negative",
    "bullish": "positive",
    "neg": "negative",
    "pos": "positive",
}

DEFAULT_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "topic": {
        "Analyst Update": "An analyst upgrades, downgrades or sets a price target for a stock.",
        "Fed | Central Banks": "The Federal Reserve or a central bank on interest rate policy.",
        "Company | Product News": "A company announces a product, deal, contract or business news.",
        "Treasuries | Corporate Debt": "Treasury yields, government bonds and corporate debt.",
        "Dividend": "A company declares, raises or cuts its dividend payout to shareholders.",
        "Earnings": "A company reports quarterly earnings, revenue and profit results.",
        "Energy | Oil": "Oil prices, natural gas, OPEC and energy markets.",
        "Financials": "Banks, lenders, insurers and the financial sector.",
        "Currencies": "Currency exchange rates: the dollar, euro, yen, forex and crypto.",
        "General News | Opinion": "General news, commentary and opinion about the economy.",
        "Gold | Metals | Materials": "Gold, silver, copper, metals and raw materials prices.",
        "IPO": "A company goes public with an initial public offering or listing.",
        "Legal | Regulation": "Lawsuits, regulators, fines, investigations and new rules.",
        "M&A | Investments": "Mergers, acquisitions, takeovers, buyouts and stake purchases.",
        "Macro": "Macroeconomic data: inflation, jobs, GDP, recession and growth.",
        "Markets": "Stock market indices, the S&P 500, Dow and market moves today.",
        "Politics": "Politics, elections, governments, Congress and the president.",
        "Personnel Change": "A company appoints, hires or replaces its CEO or an executive.",
        "Stock Commentary": "Traders' commentary and chatter about a stock ticker.",
        "Stock Movement": "A stock's shares jump, rise, fall or plunge by a percentage.",
    },
    "sentiment": {
        "negative": "Bad news: shares fall, losses, downgrades, cuts, weak outlook.",
        "neutral": "A neutral factual statement with no clear good or bad news.",
        "positive": "Good news: shares rise, gains, upgrades, beats, strong outlook.",
    },
}


class LabelError(ValueError):
    """A label value that names no class of the task."""


def normalize_label(task: str, value: object, names: list[str] | None = None) -> str:
    """Map a data set id, a name or a synonym (Bearish/Bullish) to one of ``names``.

    ``names`` defaults to the task's built-in label set; ids follow the data sets' order.
    """
    if task not in LABELS:
        raise LabelError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    names = names or LABELS[task]
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        idx = int(text)
        if task == "sentiment" and names == SENTIMENTS and idx in _SENTIMENT_IDS:
            return _SENTIMENT_IDS[idx]
        if task == "topic" and 0 <= idx < len(names):
            return names[idx]
        raise LabelError(f"{task} label id {idx} is out of range")
    lowered = text.lower()
    lowered = _SENTIMENT_SYNONYMS.get(lowered, lowered) if task == "sentiment" else lowered
    for name in names:
        if name.lower() == lowered:
            return name
    raise LabelError(f"{value!r} is not a {task} label; expected one of: {', '.join(names)}")
