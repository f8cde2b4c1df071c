"""The loaded network as an ONNX graph with ONNX Runtime's fused BERT operators.

Written from the Keras weights (no converter, no PyTorch): embeddings (word + position +
segment 0, LayerNorm), then per layer one fused ``Attention`` (Q, K and V in one matrix,
the padding mask as a raw 0/1 mask), ``SkipLayerNormalization`` (residual + bias +
LayerNorm in one op) and ``FastGelu``, which is the tanh approximation of GELU that
keras-hub's BERT uses, so the two runtimes compute the same function. Then masked mean
pooling, the optional L2 normalisation (zero-/few-shot heads) and one softmax head per task,
as :func:`model.network.build_network` does. ``tests/model/test_model_ort.py`` checks the
probabilities against TensorFlow's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from model.network import Network

MS = "com.microsoft"
EPSILON = 1e-12  # keras-hub BERT's LayerNorm epsilon
INPUTS = ("token_ids", "padding_mask")
OUTLIER_SUFFIX = "_outliers"  # the float32 product of a dense's outlier channels


class _Graph:
    """Nodes and initializers, with generated names for intermediate values."""

    def __init__(
        self,
        smooth: dict[str, np.ndarray] | None = None,
        outliers: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.smooth = smooth or {}
        self.outliers = outliers or {}
        self._n = 0

    def smoothed(self, value: str, name: str, kernel: np.ndarray) -> tuple[str, np.ndarray]:
        """Divide ``value``'s channels by ``smooth[name]`` and scale the kernel's rows by it.

        The same product in float32; for int8 it moves the activations' outlier channels
        into the weights, which are quantised per channel (SmoothQuant). Channels in
        ``outliers[name]`` are zeroed here (activation and weight row): :func:`_dense`
        multiplies them apart.
        """
        scale, drop = self.smooth.get(name), self.outliers.get(name)
        if scale is None and drop is None:
            return value, kernel
        scale = np.ones(kernel.shape[0], np.float32) if scale is None else scale
        inverse, kernel = 1.0 / scale, kernel * scale[:, None]
        if drop is not None:
            inverse[drop], kernel[drop] = 0.0, 0.0
        return self.op("Mul", [value, self.const(name + "/smooth", inverse)]), kernel

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        self.weights.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(
        self, op_type: str, inputs: list[str], domain: str = "", name: str = "", **attrs: Any
    ) -> str:
        """Add a node; ``name`` (else generated) names it and its output."""
        self._n += 1
        out = name or f"{op_type.lower()}_{self._n}"
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs)
        )
        return out


def _weights(network: Network) -> dict[str, np.ndarray]:
    return {v.path: np.asarray(v.numpy(), np.float32) for v in network.backbone.weights}


def _embeddings(g: _Graph, w: dict[str, np.ndarray]) -> str:
    # Segment ids are all 0 (build_network feeds zeros): row 0 folds into the positions.
    positions = w["position_embedding/embeddings"] + w["segment_embedding/embeddings"][0]
    words = g.op(
        "Gather", [g.const("word_embeddings", w["token_embedding/embeddings"]), "token_ids"]
    )
    width = g.op("Gather", [g.op("Shape", ["token_ids"]), g.const("one", 1, np.int64)])
    steps = g.op("Range", [g.const("zero", 0, np.int64), width, "one"])
    pos = g.op("Gather", [g.const("position_embeddings", positions), steps])
    return g.op(
        "LayerNormalization",
        [
            g.op("Add", [words, pos]),
            g.const("emb_gamma", w["embeddings_layer_norm/gamma"]),
            g.const("emb_beta", w["embeddings_layer_norm/beta"]),
        ],
        axis=-1,
        epsilon=EPSILON,
    )


def _dense(g: _Graph, w: dict[str, np.ndarray], value: str, name: str) -> str:
    """``value @ kernel``; with ``outliers[name]``, those input channels in a float32 product.

    LLM.int8()-style decomposition: the few channels with the largest activations are
    gathered and multiplied by their own weight rows (a node named ``name`` +
    :data:`OUTLIER_SUFFIX`, which int8 keeps in float32), the rest go through the main
    product (int8), and the two are added: the same function in float32.
    """
    kernel = w[name + "/kernel"]
    kernel = kernel.reshape(-1, kernel.shape[-1])
    main, scaled = g.smoothed(value, name, kernel)
    out = g.op("MatMul", [main, g.const(name + "/kernel", scaled)], name=name)
    drop = g.outliers.get(name)
    if drop is None:
        return out
    picked = g.op("Gather", [value, g.const(name + "/outlier_channels", drop, np.int64)], axis=-1)
    side = g.op(
        "MatMul",
        [picked, g.const(name + "/outlier_kernel", kernel[drop])],
        name=name + OUTLIER_SUFFIX,
    )
    return g.op("Add", [out, side])


def _layer(g: _Graph, w: dict[str, np.ndarray], i: int, x: str, mask: str, heads: int) -> str:
    p = f"transformer_layer_{i}/"
    att = p + "self_attention_layer/"
    hidden = w[att + "query/kernel"].shape[0]
    qkv = np.concatenate(
        [w[f"{att}{n}/kernel"].reshape(hidden, -1) for n in ("query", "key", "value")], 1
    )
    qkv_bias = np.concatenate([w[f"{att}{n}/bias"].reshape(-1) for n in ("query", "key", "value")])
    value, qkv = g.smoothed(x, att + "attention", qkv)
    a = g.op(
        "Attention",
        [value, g.const(f"l{i}_qkv", qkv), g.const(f"l{i}_qkv_bias", qkv_bias), mask],
        domain=MS,
        name=att + "attention",
        num_heads=heads,
    )

    def skip_norm(value: str, skip: str, bias: str, norm: str) -> str:
        return g.op(
            "SkipLayerNormalization",
            [
                value,
                skip,
                g.const(norm + "/gamma", w[norm + "/gamma"]),
                g.const(norm + "/beta", w[norm + "/beta"]),
                g.const(bias + "/bias", w[bias + "/bias"]),
            ],
            domain=MS,
            epsilon=EPSILON,
        )

    out = att + "attention_output"
    x = skip_norm(_dense(g, w, a, out), x, out, p + "self_attention_layer_norm")
    inner = p + "feedforward_intermediate_dense"
    act = g.op(
        "FastGelu",
        [_dense(g, w, x, inner), g.const(inner + "/bias", w[inner + "/bias"])],
        domain=MS,
    )
    out = p + "feedforward_output_dense"
    return skip_norm(_dense(g, w, act, out), x, out, p + "feedforward_layer_norm")


def export(
    network: Network,
    labels: dict[str, list[str]],
    *,
    normalize: bool,
    smooth: dict[str, np.ndarray] | None = None,
    outliers: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """``(token_ids int32 [B, S], padding_mask bool [B, S]) -> {task: probabilities}``.

    ``smooth``: per-channel scales of the inputs of named Attention / MatMul nodes
    (:func:`model.ort.smoothing_scales`); ``outliers``: input channels of named MatMul
    nodes to multiply apart (:func:`_dense`, :func:`model.ort.outlier_channels`).
    """
    config = network.backbone.get_config()
    w = _weights(network)
    g = _Graph(smooth, outliers)
    mask_i = g.op("Cast", ["padding_mask"], to=TensorProto.INT32)
    x = _embeddings(g, w)
    for i in range(config["num_layers"]):
        x = _layer(g, w, i, x, mask_i, config["num_heads"])
    mask_f = g.op("Cast", ["padding_mask"], to=TensorProto.FLOAT)
    axis1 = g.const("axis1", [1], np.int64)
    total = g.op(
        "ReduceSum",
        [g.op("Mul", [x, g.op("Unsqueeze", [mask_f, g.const("axis2", [2], np.int64)])]), axis1],
        keepdims=0,
    )
    count = g.op("Max", [g.op("ReduceSum", [mask_f, axis1], keepdims=1), g.const("min_count", 1.0)])
    pooled = g.op("Div", [total, count])
    if normalize:
        norm = g.op("ReduceL2", [pooled], axes=[-1], keepdims=1)
        pooled = g.op("Div", [pooled, g.op("Max", [norm, g.const("min_norm", 1e-6)])])
    heads = network.head_weights()
    outputs = []
    for task, names in labels.items():
        logits = g.op(
            "Add",
            [
                g.op(
                    "MatMul",
                    [pooled, g.const(f"{task}_kernel", heads[f"{task}_kernel"])],
                    name=f"{task}_head",
                ),
                g.const(f"{task}_bias", heads[f"{task}_bias"]),
            ],
        )
        g.nodes.append(helper.make_node("Softmax", [logits], [task], axis=-1, name=task))
        outputs.append(
            helper.make_tensor_value_info(task, TensorProto.FLOAT, ["batch", len(names)])
        )
    inputs = [
        helper.make_tensor_value_info("token_ids", TensorProto.INT32, ["batch", "length"]),
        helper.make_tensor_value_info("padding_mask", TensorProto.BOOL, ["batch", "length"]),
    ]
    graph = helper.make_graph(g.nodes, "finpulse", inputs, outputs, g.weights)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)]
    return helper.make_model(graph, opset_imports=opsets, producer_name="finpulse")
