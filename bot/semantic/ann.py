"""The index of a large store's vectors: faiss IVF-PQ and a copy of the vectors, beside the store.

SQLite stays the source of truth. `build` reads every vector from the store into a folder
named after the store's vector `seq` it covers (`<database>.ann/<model>.<seq>/`), written under
another name and renamed when complete, so a crash leaves the old folder or the new one. A
process loads the newest folder and takes what was written or dropped since from the store
(`Semantic.sync`).

- `index.faiss`: IVF-PQ, 48 bytes a paper in memory (56 MB at 1M papers, against 388 MB for
  the int8 vectors), which proposes candidates;
- `vectors.bin`: each paper's packed vector and passage vectors, end to end by rowid, read
  (`pread`) for the candidates only: the operating system's page cache keeps them, not this
  process;
- `rowids.npy`, `starts.npy`: where each paper's record starts; `meta.json`: the `seq` and the
  last vector drop the folder covers.

IVF-PQ was chosen over HNSW (usearch, hnswlib, faiss) and sqlite-vec by measurement:
docs/semantic.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.semantic.vectors import read_rows, unpack_rows

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
# Lists probed per look-up: a quarter of them, at most PROBE_MAX (recall against the exact scan,
# measured on clustered vectors at 100k and 1M papers: docs/semantic.md; at 1M, probing 128,
# 256 or 1,024 of 4,096 lists found the same share, 64 a little less).
PROBE_SHARE = 0.25
PROBE_MAX = 128
# Candidates the index proposes: REFINE for each paper asked for, at least REFINE_MIN and at
# most REFINE_MIN more than asked (`candidates_for`); their exact cosines decide. At 1M papers
# 1,000 found 0.913 of the exact scan's 50 nearest, 2,000 found 0.967 for 4 ms more at p99,
# 3,000 0.981 for 23 ms more (docs/semantic.md).
REFINE = 10
REFINE_MIN = 2000
_ADD_BATCH = 20_000
_NAME = re.compile(r"^(?P<model>.+)\.(?P<seq>\d+)$")


def available() -> bool:
    """Whether faiss is installed (it comes with the `semantic` extra)."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def lists_for(count: int) -> int:
    """Inverted lists for `count` vectors: the power of two nearest 4 * sqrt(count)."""
    return int(min(8192, max(16, 2 ** round(math.log2(4 * math.sqrt(max(count, 1)))))))


def candidates_for(k: int) -> int:
    """How many candidates to ask the index for, to refine to the `k` nearest."""
    return max(REFINE_MIN, min(REFINE * k, k + REFINE_MIN))


def directory(database: Path) -> Path:
    """Where a database's indexes live: `<database>.ann/` beside it."""
    return database.with_name(database.name + ".ann")


def newest(folder: Path, model: str) -> tuple[Path, int] | None:
    """The complete index of `model` covering the highest `seq` in `folder`, with that seq."""
    best: tuple[Path, int] | None = None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        found = _NAME.match(entry.name)
        newer = found and (best is None or int(found["seq"]) > best[1])
        if found and newer and found["model"] == model and entry.is_dir():
            best = (Path(entry.path), int(found["seq"]))
    return best


class Ann:
    """A loaded index: proposes the rowids nearest some query vectors and reads the copies of
    the vectors it was built from."""

    def __init__(self, path: Path, index: Any, rowids: Any, starts: Any, meta: dict[str, Any]):
        self.path = path
        self.seq = int(meta["seq"])  # the store's vectors written up to this seq are in it
        self.drop = int(meta["drop"])  # and the drops up to this one are reflected
        self._index = index
        index.nprobe = min(PROBE_MAX, max(1, round(index.nlist * PROBE_SHARE)))
        self._rowids = rowids
        self._starts = starts
        # Read with pread, not mapped: mapped pages count in this process's memory (the kernel
        # maps 16 around each one touched: 56 MB for one look-up's 1,000 vectors at 100k), and
        # letting go of them after each read made the next read fault them in again, 5x slower.
        self._file = os.open(path / "vectors.bin", os.O_RDONLY)

    def __del__(self) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def close(self) -> None:
        """Let go of the vectors' copy (a newer index replaces this one)."""
        with contextlib.suppress(OSError):
            os.close(self._file)

    @property
    def nbytes(self) -> int:
        """Memory held: a code and an id per paper, the lists' centroids, the record offsets."""
        index = self._index
        codes = index.ntotal * (PQ_CODES + 8) + index.nlist * index.d * 4
        return int(codes + self._rowids.nbytes + self._starts.nbytes)

    @staticmethod
    def meta(path: Path) -> dict[str, Any]:
        """What an index folder covers: the store's vector `seq` and last `drop` id, and the
        `token` the store recorded when it was built."""
        found: dict[str, Any] = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        return found

    @classmethod
    def load(cls, path: Path) -> Ann:
        """Read an index folder written by `build`."""
        import faiss
        import numpy as np

        faiss.omp_set_num_threads(1)
        meta = cls.meta(path)
        return cls(
            path,
            faiss.read_index(str(path / "index.faiss")),
            np.load(path / "rowids.npy"),
            np.load(path / "starts.npy"),
            meta,
        )

    def search(self, queries: NDArray[np.float32], k: int) -> NDArray[np.int64]:
        """About `k` rowids nearest the query rows by the index's estimate, shared between the
        rows (a topic's OR groups), merged."""
        import numpy as np

        each = -(-k // len(queries))
        _, labels = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), each)
        found: NDArray[np.int64] = np.unique(labels[labels >= 0])
        return found

    def _positions(self, rowids: NDArray[np.int64]) -> tuple[Any, Any]:
        """Which of these rowids the index holds, and their records' positions."""
        import numpy as np

        at = np.searchsorted(self._rowids, rowids)
        at[at >= len(self._rowids)] = 0
        found = self._rowids[at] == rowids
        return found, at[found]

    def whole(
        self, rowids: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int8], NDArray[np.float32]]:
        """The copies of these papers' whole-text vectors, of those in the index: (rowids,
        int8 rows, their scales)."""
        found, at = self._positions(rowids)
        starts = self._starts[at].tolist()
        read = read_rows(self._file, self._index.d + 4, starts, self.path / "vectors.bin")
        return (rowids[found], *unpack_rows(read, self._index.d))

    def records(self, rowids: Iterable[int]) -> dict[int, bytes]:
        """The copies of these papers' packed vector and passage vectors after it, of those in
        the index."""
        import numpy as np

        wanted = np.fromiter(rowids, dtype=np.int64)
        found, at = self._positions(wanted)
        wanted = wanted[found]
        starts, ends = self._starts[at].tolist(), self._starts[at + 1].tolist()
        return {
            rowid: os.pread(self._file, end - start, start)
            for rowid, start, end in zip(wanted.tolist(), starts, ends, strict=True)
        }


def _floats(rows: Sequence[tuple[int, bytes]], dim: int) -> Any:
    import numpy as np

    ints, scales = unpack_rows(b"".join(blob for _, blob in rows), dim)
    return ints.astype(np.float32) * scales[:, None]


def build(
    whole: Callable[[], Iterable[tuple[int, bytes]]],
    rows: Callable[[], Iterable[tuple[int, bytes, bytes | None]]],
    count: int,
    dim: int,
    path: Path,
    meta: dict[str, Any],
    publish: Callable[[], None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the index folder `path` of the `count` vectors: a sample of `whole()` (rowid,
    vector) trains the quantisers, then every one of `rows()` (rowid, vector, passages) by
    rowid is added and copied; `publish()` is called just before it is put in place. Atomic: a
    crash leaves the old folder or the new one."""
    import faiss
    import numpy as np

    lists = lists_for(count)
    # faiss's k-means wants about 40 points a centroid; PQ needs 256 per code book.
    stride = max(1, count // max(40 * lists, 10_000))
    sample = [row for i, row in enumerate(whole()) if i % stride == 0]
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # One thread: faiss's OpenMP threads spin at every barrier of k-means, and on a 2-core
    # machine with anything else running, training took 2.5 times longer with two.
    faiss.omp_set_num_threads(1)
    index = faiss.IndexIVFPQ(
        faiss.IndexFlatIP(dim), dim, lists, PQ_CODES, 8, faiss.METRIC_INNER_PRODUCT
    )
    # A small store trains on what it has, without a warning per code book.
    index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1
    index.train(_floats(sample, dim))
    del sample
    rowids: list[int] = []
    starts = [0]
    with open(partial / "vectors.bin", "wb") as copy:
        batch: list[tuple[int, bytes]] = []
        for rowid, vector, passages in rows():
            record = vector + (passages or b"")
            copy.write(record)
            rowids.append(rowid)
            starts.append(starts[-1] + len(record))
            batch.append((rowid, vector))
            if len(batch) == _ADD_BATCH:
                _add(index, batch, dim, progress)
                batch = []
        _add(index, batch, dim, progress)
        copy.flush()
        os.fsync(copy.fileno())
    faiss.write_index(index, str(partial / "index.faiss"))
    np.save(partial / "rowids.npy", np.array(rowids, dtype=np.int64))
    np.save(partial / "starts.npy", np.array(starts, dtype=np.int64))
    (partial / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    for name in ("index.faiss", "rowids.npy", "starts.npy", "meta.json"):
        with open(partial / name, "rb") as written:
            os.fsync(written.fileno())
    shutil.rmtree(path, ignore_errors=True)
    publish()
    os.rename(partial, path)
    for old in path.parent.iterdir():
        theirs = _NAME.match(old.name.removesuffix(".partial"))
        mine = _NAME.match(path.name)
        if old != path and theirs and mine and theirs["model"] == mine["model"]:
            # A process still reading an older folder keeps its open file (POSIX).
            shutil.rmtree(old, ignore_errors=True)
    log.info("vector index: %d papers in %d lists written to %s", index.ntotal, lists, path)


def _add(
    index: Any, rows: list[tuple[int, bytes]], dim: int, progress: Callable[[int], None] | None
) -> None:
    import numpy as np

    if not rows:
        return
    ids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
    index.add_with_ids(_floats(rows, dim), ids)
    if progress is not None:
        progress(len(rows))
