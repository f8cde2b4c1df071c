"""LoRA: adapters train, save small, and merge into the base with the same outputs."""

import numpy as np
import pytest

from model import lora
from model.artifact import ADAPTER_FILE, ENCODER_DIR, load_network
from model.encoder import load_backbone, load_tokenizer, pad, tokenize
from tools.model.tiny import train_tiny_model


@pytest.fixture(scope="module")
def lora_model(tmp_path_factory):
    return train_tiny_model(tmp_path_factory.mktemp("lora"), method="lora", promote=False)


def test_lora_saves_only_the_adapter(lora_model):
    assert (lora_model.path / ADAPTER_FILE).is_file()
    assert not (lora_model.path / ENCODER_DIR).exists()
    base = lora_model.meta["base"]
    assert base["sha256"] == lora.file_sha256(lora.find_base(base) / lora.BASE_WEIGHTS)
    assert lora_model.meta["lora"]["layers"] == 12  # 6 denses x 2 tiny layers
    from safetensors.numpy import load_file

    saved = load_file(lora_model.path / ADAPTER_FILE)
    # every layer's own adapter: 2 layers x 6 denses x (A, B, bias) + 2 x 2 LayerNorms x 2
    assert len(saved) == 2 * (6 * 3 + 2 * 2)
    assert {k.split("/")[0] for k in saved} == {"transformer_layer_0", "transformer_layer_1"}


def test_merged_equals_unmerged(lora_model):
    from safetensors.numpy import load_file

    meta, path = lora_model.meta, lora_model.path
    weights = load_file(path / ADAPTER_FILE)
    assert any(k.endswith(lora.LORA_B) and np.abs(v).max() > 0 for k, v in weights.items())
    network, tokenizer, _ = load_network(path, dtype="float32")  # merged
    unmerged = load_backbone(lora.find_base(meta["base"]), dtype="float32")
    lora.enable(unmerged, meta["lora"]["rank"], meta["lora"]["alpha"])
    lora.assign(unmerged, weights, merge_scale=None)
    ids, mask = pad(tokenize(tokenizer, ["shares fall after weak report", "fed rate"]), 32)
    feed = {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)}
    merged_out = network.backbone(feed)["sequence_output"]
    unmerged_out = unmerged(feed)["sequence_output"]
    np.testing.assert_allclose(np.asarray(merged_out), np.asarray(unmerged_out), atol=1e-5)
    plain = load_backbone(lora.find_base(meta["base"]), dtype="float32")(feed)["sequence_output"]
    assert np.abs(np.asarray(plain) - np.asarray(merged_out)).max() > 1e-4  # it did change


def test_adapter_refuses_another_base(lora_model):
    from model.encoder import BaseModelError

    other = dict(lora_model.meta["base"], sha256="0" * 64)
    with pytest.raises(BaseModelError, match="needs the base encoder"):
        lora.find_base(other)


def test_unknown_adapter_weight_is_refused(lora_model):
    backbone = load_backbone(lora.find_base(lora_model.meta["base"]))
    with pytest.raises(ValueError, match="not in this encoder"):
        lora.assign(backbone, {"nowhere/lora_kernel_a": np.zeros(2)}, merge_scale=1.0)


def test_tokenizer_is_saved(lora_model):
    assert load_tokenizer(lora_model.path, 32).encode("fed").ids
