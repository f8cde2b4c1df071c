"""The keras-hub encoder built from an HF directory equals a plain numpy BERT forward.

keras-hub's BERT uses the tanh approximation of GELU where HF uses the exact erf form; the
reference follows keras-hub (with exact GELU the pooled vectors differ by ~1e-3 relative).
"""

import numpy as np
from safetensors.numpy import load_file

from model.encoder import load_backbone, load_tokenizer
from model.network import build_network, compile_forward
from tools.model.tiny import make_tiny_base


def _layer_norm(x, g, b, eps=1e-12):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def numpy_bert(w, config, ids, mask):
    """The HF BertModel forward (eval mode), written out from the weights."""
    n, length = ids.shape
    heads = config["num_attention_heads"]
    dh = config["hidden_size"] // heads
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:length][None]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def dense(h, name, p=p):
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (
            dense(x, f"attention.self.{m}").reshape(n, length, heads, dh).transpose(0, 2, 1, 3)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + np.where(mask[:, None, None], 0, -1e9)
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, -1)
        x = _layer_norm(
            x + dense(ctx, "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = dense(x, "intermediate.dense")
        h = dense(
            0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h**3))), "output.dense"
        )
        x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return x


def test_converted_encoder_matches_numpy_reference(tmp_path):
    import json

    base = make_tiny_base(tmp_path / "base", seed=3)
    w = load_file(str(base / "model.safetensors"))
    # Random weights of a realistic scale, so every mapped tensor matters.
    rng = np.random.default_rng(0)
    w = {k: (v + rng.normal(0, 0.2, v.shape)).astype(np.float32) for k, v in w.items()}
    from safetensors.numpy import save_file

    save_file(w, str(base / "model.safetensors"))
    config = json.loads((base / "config.json").read_text())
    tok = load_tokenizer(base, 32)
    ids_list = [np.array(e.ids) for e in tok.encode_batch(["shares of oil fall", "the fed"])]
    ids = np.zeros((2, 8), np.int32)
    for r, x in enumerate(ids_list):
        ids[r, : len(x)] = x
    mask = ids != 0
    net = build_network(
        load_backbone(base), {"topic": ["a"], "sentiment": ["b"]}, dropout=0.0, normalize=False
    )
    pooled = compile_forward(net.embedder)(ids, mask)
    ref = numpy_bert(w, config, ids, mask)
    ref_pooled = (ref * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(pooled, ref_pooled, atol=2e-5)


def test_urls_read_as_one_word_and_the_rule_is_saved(tmp_path):
    from tokenizers import Tokenizer

    from model.encoder import replace_urls

    base = make_tiny_base(tmp_path / "base")
    tok = replace_urls(load_tokenizer(base, max_length=64))
    with_url = tok.encode("Shares fall https://t.co/q2fXwZqMZ4 today").ids
    assert with_url == tok.encode("shares fall http today").ids
    saved = Tokenizer.from_str(tok.to_str())  # what a model directory's tokenizer.json holds
    assert saved.encode("Shares fall http://x.co/a?b=1 today").ids == with_url
    plain = load_tokenizer(base, max_length=64)  # models trained without the rule keep it off
    assert len(plain.encode("shares fall https://t.co/q2fXwZqMZ4 today").ids) > len(with_url)
