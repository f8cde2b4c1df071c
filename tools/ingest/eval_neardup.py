"""Measure near-duplicate precision and recall on real headlines; prints JSON.

Positives: each text paired with a copy carrying one realistic wire-republish edit
("UPDATE:" prefix, source tag added or removed, one word changed, lead truncated, link
swapped, or two edits at once). Negatives: every pair of distinct texts in the files
(texts equal after :func:`near_dup_text` are true repeats and are counted separately).

    python -m tools.ingest.eval_neardup --data ../shared/data --threshold 0.5 --shingle 5
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from ingest.neardup import LSHIndex, MinHasher, compatible, marks, near_dup_text

FILES = ("twitter-fin-sentiment/sent_valid.csv", "twitter-fin-topic/topic_valid.csv")
_TAG = re.compile(r"^\$[A-Z.]+(?:\s+\$[A-Z.]+)*\s*[-:]\s*")
_LINK = re.compile(r"https?://\S+")
_ERR = Console(stderr=True)
WORDS = ("shares", "stock", "market", "profit", "deal", "bank", "rates", "sales", "outlook")


def _change_word(text: str, rng: random.Random) -> str:
    words = text.split()
    i = rng.randrange(len(words))
    words[i] = rng.choice(WORDS)
    return " ".join(words)


def _truncate(text: str, rng: random.Random) -> str:
    words = text.split()
    keep = max(1, round(len(words) * rng.uniform(0.7, 0.85)))
    return " ".join(words[:keep]) + "..."


EDITS: dict[str, Callable[[str, random.Random], str]] = {
    "update_prefix": lambda t, r: r.choice(["UPDATE: ", "UPDATE 1-", "BREAKING: "]) + t,
    "add_source_tag": lambda t, r: t + r.choice([" - Reuters", " | Bloomberg", " (AP)"]),
    "drop_ticker_tag": lambda t, r: _TAG.sub("", t) if _TAG.match(t) else "(Reuters) - " + t,
    "change_word": _change_word,
    "truncate": _truncate,
    "swap_link": lambda t, r: (
        _LINK.sub("https://t.co/Zz9" + str(r.randrange(10**6)), t)
        if _LINK.search(t)
        else t + " https://t.co/Zz9" + str(r.randrange(10**6))
    ),
}
EDITS["two_edits"] = lambda t, r: EDITS["update_prefix"](_change_word(t, r), r)


def load_texts(data: Path) -> list[str]:
    texts: list[str] = []
    for name in FILES:
        with (data / name).open(newline="", encoding="utf-8") as fh:
            texts += [row["text"] for row in csv.DictReader(fh)]
    return texts


def _decide(index: LSHIndex, eq: np.ndarray) -> np.ndarray:
    """What the index says for rows of signature-equality, before the marks guard."""
    b, r = index.bands, index.rows
    candidate = eq[:, : b * r].reshape(len(eq), b, r).all(axis=2).any(axis=1)
    return candidate & (eq.mean(axis=1) >= index.threshold)


def evaluate(texts: list[str], threshold: float, shingle: int, num_perm: int, seed: int) -> dict:
    rng = random.Random(seed)
    hasher = MinHasher(num_perm=num_perm, shingle=shingle)
    index = LSHIndex(threshold, num_perm)
    norm = [near_dup_text(t) for t in texts]
    distinct = sorted(set(norm))
    sigs = np.stack(
        [hasher.signature(t) for t in track(distinct, description="signatures", console=_ERR)]
    )
    mk = [marks(t) for t in distinct]

    # Positives: original vs edited copy, per edit kind.
    recall: dict[str, float] = {}
    for kind, edit in EDITS.items():
        hits = 0
        for t, sig in zip(distinct, sigs, strict=True):
            edited = near_dup_text(edit(t, rng))
            ok = compatible(marks(t), marks(edited))
            hits += ok and bool(_decide(index, (hasher.signature(edited) == sig)[None, :])[0])
        recall[kind] = hits / len(distinct)

    # Negatives: all pairs of distinct normalised texts.
    flagged: list[tuple[int, int, float]] = []
    for i in track(range(len(distinct) - 1), description="all pairs", console=_ERR):
        eq = sigs[i + 1 :] == sigs[i]
        for j in np.flatnonzero(_decide(index, eq)):
            k = i + 1 + int(j)
            if compatible(mk[i], mk[k]):
                flagged.append((i, k, float(eq[j].mean())))
    # Stream: every file row in order through the real index, as a --dedup replay would.
    stream = LSHIndex(threshold, num_perm)
    pos = {t: n for n, t in enumerate(distinct)}
    first_seen: set[str] = set()
    dropped = dropped_first = 0
    for row, t in enumerate(norm):
        n = pos[t]
        if stream.query(sigs[n], 0.0, mk[n]) is not None:
            dropped += 1
            dropped_first += t not in first_seen  # no identical earlier row: a near match
        first_seen.add(t)
        stream.insert(str(row), sigs[n], 0.0, mk[n])
    pairs = len(distinct) * (len(distinct) - 1) // 2
    positives = len(distinct) * len(EDITS)
    tp = sum(recall.values()) * len(distinct)
    return {
        "threshold": threshold,
        "shingle": shingle,
        "num_perm": num_perm,
        "bands": index.bands,
        "rows": index.rows,
        "texts": len(texts),
        "distinct_texts": len(distinct),
        "exact_repeats_after_normalising": len(texts) - len(distinct),
        "recall_by_edit": {k: round(v, 4) for k, v in recall.items()},
        "recall": round(tp / positives, 4),
        "negative_pairs": pairs,
        "false_positive_pairs": len(flagged),
        "false_positive_rate": len(flagged) / pairs,
        "precision_balanced": round(tp / (tp + len(flagged)), 4),
        "stream_rows": len(norm),
        "stream_dropped_rows": dropped,
        "stream_dropped_as_near_not_identical": dropped_first,
        "flagged_sample": [
            [distinct[i], distinct[j], round(s, 3)]
            for i, j, s in random.Random(seed).sample(flagged, min(40, len(flagged)))
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--threshold", type=float, nargs="+", default=[0.5])
    p.add_argument("--shingle", type=int, nargs="+", default=[5])
    p.add_argument("--num-perm", type=int, default=128)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--no-sample", action="store_true", help="omit the flagged pairs sample")
    args = p.parse_args(argv)
    texts = load_texts(args.data)
    results = []
    for shingle in args.shingle:
        for threshold in args.threshold:
            r = evaluate(texts, threshold, shingle, args.num_perm, args.seed)
            if args.no_sample:
                r.pop("flagged_sample")
            results.append(r)
    json.dump(results, sys.stdout, indent=2, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
