"""The vectors: int8 packing, the in-memory index, and what the facade reads from the store.

A vector is stored packed (`pack`: a float32 scale, then int8 components) and kept packed in
memory (`VectorIndex`); scoring converts rows to float32 a block at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class VectorStore(Protocol):
    """What the semantic facade needs of a store: its papers' vectors, read and written.

    `bot.storage.papers.Papers` is one (`store.papers`); naming the methods here keeps this
    package from importing the storage layer.
    """

    def path(self) -> Path | None:
        """The database file (its index files live beside it), or None in memory."""
        ...

    def index_token(self, model: str) -> str | None:
        """The token of the vector index last built from this database."""
        ...

    def set_index_token(self, model: str, token: str) -> None:
        """Record the token of the vector index being built."""
        ...

    def count_vectors(self, model: str) -> int:
        """How many papers have a vector from `model`."""
        ...

    def vector_seq(self, model: str) -> int:
        """The `seq` of the latest write of `model`'s vectors."""
        ...

    def vectors(self, model: str, after: int = 0) -> Iterable[tuple[int, bytes]]:
        """Every stored (rowid, packed vector) of `model`, or those written after `after`."""
        ...

    def last_drop(self) -> int:
        """The id of the latest vector dropped from the store."""
        ...

    def dropped(self, model: str, after: int) -> set[int]:
        """The papers whose `model` vector was dropped after the drop id `after`."""
        ...

    def all_vector_rows(self, model: str) -> Iterable[tuple[int, bytes, bytes | None]]:
        """Every (rowid, vector, passage vectors or None) of `model`, by rowid."""
        ...

    def vector_rows(
        self, model: str, rowids: Collection[int]
    ) -> Iterable[tuple[int, bytes, bytes | None]]:
        """(rowid, packed vector, packed passage vectors end to end) of those that have one."""
        ...

    def put_vectors(self, model: str, rows: Sequence[tuple[int, bytes, bytes]]) -> int:
        """Store (rowid, paper vector, its passages' vectors) rows; the write's seq."""
        ...

    def without_vectors(self, model: str, limit: int) -> list[tuple[int, str, str | None]]:
        """Up to `limit` papers lacking vectors from `model`, newest first."""
        ...


def pack(vector: NDArray[np.float32]) -> bytes:
    """A unit vector as 4 + dim bytes: its float32 scale, then int8 components (cosine error
    about 0.002, a quarter of float32's size)."""
    import numpy as np

    peak = float(np.abs(vector).max()) or 1.0
    scale = np.float32(peak / 127.0)
    quantized = np.clip(np.rint(vector / scale), -127, 127).astype(np.int8)
    return bytes(scale.tobytes()) + bytes(quantized.tobytes())


def unpack_rows(blob: bytes, dim: int) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """Packed vectors stored end to end, as (int8 rows, their scales)."""
    import numpy as np

    raw = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 4 + dim)
    scales = raw[:, :4].copy().view(np.float32).reshape(-1)
    return raw[:, 4:].view(np.int8), scales


def best_cosines(
    ints: NDArray[np.int8], scales: NDArray[np.float32], queries: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Each packed vector's (int8 rows, their scales) best cosine over the query rows."""
    import numpy as np

    best: NDArray[np.float32] = (ints.astype(np.float32) @ queries.T).max(axis=1) * scales
    return best


def read_rows(file: int, size: int, offsets: Iterable[int], name: object) -> bytes:
    """`size` bytes at each offset of an open file (`name` says which, if it is truncated), end
    to end, read with `pread`: the page cache holds them, not this process (a mapped file's
    pages would count in its memory)."""
    import os

    offsets = list(offsets)
    data = b"".join([os.pread(file, size, at) for at in offsets])
    if len(data) != size * len(offsets):
        raise ValueError(f"{name} is truncated")
    return data


def top_k(
    rowids: NDArray[np.int64], scores: NDArray[np.float32], k: int
) -> list[tuple[int, float]]:
    """The `k` best (rowid, score) pairs, best first."""
    import numpy as np

    if len(scores) > k:
        top = np.argpartition(-scores, k)[:k]
        rowids, scores = rowids[top], scores[top]
    order = np.argsort(-scores, kind="stable")
    return list(zip(rowids[order].tolist(), scores[order].tolist(), strict=True))


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

    @property
    def rowids(self) -> NDArray[np.int64]:
        """The rowids held (a view: do not keep it across `add`)."""
        return self._rowids[: self._size]

    def packed(self, rowid: int) -> bytes:
        """The paper's vector as `pack` wrote it (KeyError when it has none)."""
        at = self._position[rowid]
        return bytes(self._scales[at : at + 1].tobytes()) + bytes(self._rows[at].tobytes())

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
            return self._rowids[at], best_cosines(self._rows[at], self._scales[at], queries)
        best = np.empty(self._size, dtype=np.float32)
        for start in range(0, self._size, self._BLOCK):
            end = min(start + self._BLOCK, self._size)
            best[start:end] = best_cosines(self._rows[start:end], self._scales[start:end], queries)
        return self._rowids[: self._size].copy(), best
