"""The approximate index: faiss IVF-PQ over a store's whole-text vectors, in a file beside it.

SQLite stays the source of truth. `build` reads every vector from the store and writes an index
file named after the store's vector `seq` it covers; a process loads the newest file and finds
the vectors written since in the store (`Semantic.sync`). The index only proposes candidates:
every candidate is scored again from its vector in SQLite, so a paper whose vector changed or
went since the file was written is scored as the store says, or not at all.

IVF-PQ keeps 48 bytes a paper in memory (56 MB at 1M papers against 388 MB of int8 vectors) and
was chosen over HNSW (usearch, hnswlib, faiss) and sqlite-vec by measurement: docs/semantic.md.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.semantic.vectors import unpack_rows

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)
# faiss says at INFO which of its builds it tried to load: eight lines at every start.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

# Below this many vectors a brute-force scan of them in memory is as fast and exact.
ANN_MIN = 20_000
# Product quantisation: 48 codes of 8 bits, one per 8 of the 384 dimensions.
PQ_CODES = 48
# Lists probed per look-up, as a share of all lists (recall against the exact scan, measured on
# clustered vectors at 100k and 1M papers: docs/semantic.md).
PROBE_SHARE = 0.25
# Candidates the index proposes for each one asked for (at least REFINE_MIN): their exact
# cosines, from SQLite, decide.
REFINE = 5
REFINE_MIN = 1000
_ADD_BATCH = 20_000
_NAME = re.compile(r"^(?P<model>.+)\.(?P<seq>\d+)\.faiss$")


def available() -> bool:
    """Whether faiss is installed (it comes with the `semantic` extra)."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def lists_for(count: int) -> int:
    """Inverted lists for `count` vectors: the power of two nearest 4 * sqrt(count)."""
    return int(min(8192, max(16, 2 ** round(math.log2(4 * math.sqrt(max(count, 1)))))))


def directory(database: Path) -> Path:
    """Where a database's index files live: `<database>.ann/` beside it."""
    return database.with_name(database.name + ".ann")


def newest(folder: Path, model: str) -> tuple[Path, int] | None:
    """The index file of `model` covering the highest `seq` in `folder`, with that seq."""
    best: tuple[Path, int] | None = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        found = _NAME.match(entry.name)
        if found and found["model"] == model and (best is None or int(found["seq"]) > best[1]):
            best = (Path(entry.path), int(found["seq"]))
    return best


class Ann:
    """A loaded IVF-PQ index: proposes the rowids nearest a few query vectors."""

    def __init__(self, index: Any, seq: int) -> None:
        self._index = index
        self.seq = seq  # the store's vectors written up to this seq are in it
        index.nprobe = max(1, round(index.nlist * PROBE_SHARE))

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def nbytes(self) -> int:
        """Memory held: a code and an id per paper, and the lists' centroids."""
        index = self._index
        return int(index.ntotal * (PQ_CODES + 8) + index.nlist * index.d * 4)

    @classmethod
    def load(cls, path: Path, seq: int) -> Ann:
        """Read an index file (written by `build`)."""
        import faiss

        faiss.omp_set_num_threads(1)
        return cls(faiss.read_index(str(path)), seq)

    def search(self, queries: NDArray[np.float32], k: int) -> NDArray[np.int64]:
        """Up to `k` rowids per query row, nearest first by the index's estimate, merged."""
        import numpy as np

        _, labels = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        found: NDArray[np.int64] = np.unique(labels[labels >= 0])
        return found


def _floats(rows: list[tuple[int, bytes]], dim: int) -> tuple[Any, Any]:
    import numpy as np

    ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
    ints, scales = unpack_rows(b"".join(blob for _, blob in rows), dim)
    return ids, ints.astype(np.float32) * scales[:, None]


def _add(
    index: Any, rows: list[tuple[int, bytes]], dim: int, progress: Callable[[int], None] | None
) -> None:
    ids, vectors = _floats(rows, dim)
    index.add_with_ids(vectors, ids)
    if progress is not None:
        progress(len(rows))


def build(
    read: Callable[[], Iterable[tuple[int, bytes]]],
    count: int,
    dim: int,
    path: Path,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write an index of the `count` vectors `read()` yields (called twice: a sample trains the
    quantisers, then every vector is added) to `path`, atomically: a crash leaves the old file
    or the new one, never half of one."""
    import faiss

    lists = lists_for(count)
    # faiss's k-means wants about 40 points a centroid; PQ needs 256 per code book.
    stride = max(1, count // max(40 * lists, 10_000))
    sample = [row for i, row in enumerate(read()) if i % stride == 0]
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        index = faiss.IndexIVFPQ(
            faiss.IndexFlatIP(dim), dim, lists, PQ_CODES, 8, faiss.METRIC_INNER_PRODUCT
        )
        # A small store trains on what it has, without a warning per code book.
        index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1
        index.train(_floats(sample, dim)[1])
        del sample
        batch: list[tuple[int, bytes]] = []
        for row in read():
            batch.append(row)
            if len(batch) == _ADD_BATCH:
                _add(index, batch, dim, progress)
                batch = []
        if batch:
            _add(index, batch, dim, progress)
    finally:
        faiss.omp_set_num_threads(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    faiss.write_index(index, str(partial))
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, path)
    mine = _NAME.match(path.name)
    for old in path.parent.glob("*.faiss"):
        theirs = _NAME.match(old.name)
        if old != path and theirs and mine and theirs["model"] == mine["model"]:
            old.unlink(missing_ok=True)
    log.info("vector index: %d papers in %d lists written to %s", index.ntotal, lists, path)
