"""The facade: one encoder and one store's paper vectors, asked how similar papers are.

Look-ups and digests call `Semantic`; `embed_missing` fills a store in one thread (`paperbot
reindex --semantic`). What a paper and a topic are embedded as (`paper_texts`, `group_text`)
lives here too: both sides of a cosine are chosen together.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.semantic import ann
from bot.semantic.ann import Ann
from bot.semantic.model import Encoder
from bot.semantic.vectors import (
    VectorIndex,
    VectorStore,
    best_cosines,
    pack,
    top_k,
    unpack_rows,
)
from bot.topics import Group, Topic

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)


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
# Papers' stored vectors kept for re-use: a digest tick asks about one day's papers topic after
# topic.
ROW_CACHE = 4096
# How often a process looks for an index newer than its own (another process's reindex).
INDEX_LOOK_SECONDS = 10.0

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def paper_texts(title: str, summary: str | None) -> tuple[str, list[str]]:
    """What a paper is embedded from: its title and abstract as one text, and the abstract's
    passages (`PASSAGE_SENTENCES` sentences each)."""
    whole = f"{title}. {summary}" if summary else title
    sentences = [s for s in _SENTENCE_END.split(summary or "") if len(s) > MIN_SENTENCE_CHARS]
    step = PASSAGE_SENTENCES
    return whole, [" ".join(sentences[i : i + step]) for i in range(0, len(sentences), step)]


class Semantic:
    """An encoder and one store's paper vectors: what look-ups and digests ask for similarity.

    Lives on the store's thread with its `Store`. A large store's vectors are searched through
    its index (`bot.semantic.ann`), whose copies of the vectors stand for SQLite's until the
    store says a paper's vector was rewritten or dropped since; those, and every vector of a
    store without an index, come from SQLite (whole-text vectors held in memory for the
    search, passages read for the papers being scored).
    """

    def __init__(self, encoder: Encoder, use_index: bool = True) -> None:
        self.encoder = encoder
        self.use_index = use_index  # False: scan every vector (benchmarks compare the two)
        self.ann: Ann | None = None
        # The whole-text vectors the index lacks (all of them without one), searched exactly.
        self.recent = VectorIndex(encoder.dim)
        self._seen = 0  # the store's vector seq that `recent` is complete up to
        self._dropped: int | None = None  # the store's last vector drop taken into account
        self._gone: set[int] = set()  # dropped since the index was built: SQLite says
        self._looked = -math.inf  # when the index folder was last looked at (monotonic)
        self._refused: Path | None = None  # an index of another database, said once
        self._queries: OrderedDict[str, NDArray[np.float32]] = OrderedDict()
        self._rows: OrderedDict[int, tuple[bytes, bytes | None]] = OrderedDict()

    @property
    def nbytes(self) -> int:
        """Memory held for searching: the index and the vectors it lacks."""
        return self.recent.nbytes + (self.ann.nbytes if self.ann is not None else 0)

    def sync(self, store: VectorStore) -> None:
        """Follow the store: a newer index (another process ran `paperbot reindex`), and the
        vectors written or dropped since the last look, by any process."""
        model = self.encoder.name
        now = time.monotonic()
        if now - self._looked >= INDEX_LOOK_SECONDS:
            self._looked = now
            self._load_index(store)
        if self._dropped is None:
            self._dropped = store.last_drop()  # what is dropped now is not read below
        seq = store.vector_seq(model)
        if seq > self._seen:
            rows = list(store.vectors(model, after=self._seen))
            self.recent.add(rows)
            for rowid, _ in rows:
                self._rows.pop(rowid, None)
            self._seen = seq
        drop = store.last_drop()
        if drop > self._dropped:
            gone = store.dropped(model, after=self._dropped)
            self._gone |= gone
            for rowid in gone:
                self._rows.pop(rowid, None)
            self._dropped = drop

    def _load_index(self, store: VectorStore) -> None:
        database = store.path()
        if database is None or not self.use_index or not ann.available():
            return
        found = ann.newest(ann.directory(database), self.encoder.name)
        if found is None or (self.ann is not None and found[0] == self.ann.path):
            return
        path, _ = found
        latest = store.vector_seq(self.encoder.name)
        if ann.Ann.meta(path).get("token") != store.index_token(self.encoder.name):
            # Built from another copy of the database (say, the timeline a restored backup
            # undid): its copies are not these vectors. Said once; searched exactly meanwhile.
            if path != self._refused:
                log.warning("vector index %s is not this database's: reindex --semantic", path)
                self._refused = path
            return
        loaded = ann.Ann.load(path)
        drop = store.last_drop()
        if self.ann is not None:
            self.ann.close()
        self.ann = loaded
        self.recent = VectorIndex(self.encoder.dim)
        self.recent.add(list(store.vectors(self.encoder.name, after=loaded.seq)))
        self._seen = latest
        self._gone = store.dropped(self.encoder.name, after=loaded.drop)
        self._dropped = drop
        self._rows.clear()
        log.info(
            "vector index: %d papers from %s, %d newer in memory",
            len(loaded),
            path,
            len(self.recent),
        )

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

    def _candidates(self, queries: NDArray[np.float32], k: int) -> list[int]:
        """Rowids worth scoring exactly for the `k` nearest: what the index proposes and the `k`
        nearest of the vectors it lacks."""
        import numpy as np

        found: set[int] = set()
        if self.ann is not None:
            found.update(self.ann.search(queries, ann.candidates_for(k)).tolist())
        if len(self.recent):
            rowids, best = self.recent.scores(queries)
            if len(best) > k:
                rowids = rowids[np.argpartition(-best, k)[:k]]
            found.update(rowids.tolist())
        return sorted(found)

    def _from_store(self, rowid: int) -> bool:
        """Whether the paper's vectors are read from SQLite rather than the index's copy."""
        return self.ann is None or rowid in self._gone or rowid in self.recent

    def _whole(
        self, store: VectorStore, queries: NDArray[np.float32], rowids: Sequence[int]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(rowids, best cosine over the query rows of their whole text) of those papers with
        a vector: held in memory, the index's copy, or (dropped since the index) SQLite's."""
        import numpy as np

        wanted = np.asarray(rowids, dtype=np.int64)
        asked = np.isin(wanted, np.fromiter(self._gone, np.int64)) if self._gone else None
        held = np.isin(wanted, self.recent.rowids)
        if asked is not None:
            held &= ~asked
        ids, cosine = self.recent.scores(queries, wanted[held].tolist())
        found = [(ids, cosine)]
        if self.ann is not None:
            copied = ~held if asked is None else ~held & ~asked
            copy_ids, ints, scales = self.ann.whole(wanted[copied])
            found.append((copy_ids, best_cosines(ints, scales, queries)))
        if asked is not None and asked.any():
            rows = self._rows_of(store, wanted[asked].tolist())
            if rows:
                ints, scales = unpack_rows(b"".join(v for v, _ in rows.values()), self.encoder.dim)
                ids = np.fromiter(rows, dtype=np.int64, count=len(rows))
                found.append((ids, best_cosines(ints, scales, queries)))
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def _closest(
        self, store: VectorStore, queries: NDArray[np.float32], rowids: list[int], k: int
    ) -> list[int]:
        """Of `rowids`, the `k` whose whole text is closest to a query (a paper without a
        vector is left out)."""
        return [r for r, _ in top_k(*self._whole(store, queries, rowids), k)]

    def _rows_of(
        self, store: VectorStore, rowids: Collection[int]
    ) -> dict[int, tuple[bytes, bytes | None]]:
        """The (vector, passages) of those papers that have them: the index's copies, or the
        store's (recently used ones kept: a digest tick asks about one day's papers topic
        after topic)."""
        found: dict[int, tuple[bytes, bytes | None]] = {}
        missing = []
        copies = []
        for rowid in rowids:
            row = self._rows.get(rowid)
            if row is not None:
                found[rowid] = row
                self._rows.move_to_end(rowid)
            elif self._from_store(rowid):
                missing.append(rowid)
            else:
                copies.append(rowid)
        if self.ann is not None and copies:
            width = self.encoder.dim + 4
            for rowid, record in self.ann.records(copies).items():
                found[rowid] = (record[:width], record[width:] or None)
        for rowid, vector, passages in (
            store.vector_rows(self.encoder.name, missing) if missing else ()
        ):
            found[rowid] = self._rows[rowid] = (vector, passages)
        while len(self._rows) > ROW_CACHE:
            self._rows.popitem(last=False)
        return found

    def _exact(
        self, store: VectorStore, queries: NDArray[np.float32], rowids: Collection[int]
    ) -> dict[int, float]:
        """Similarity by rowid of those papers with vectors: `PASSAGE_WEIGHT` of the closest
        passage's cosine plus the rest of the whole text's (both the best over the query rows);
        a paper without passages (no abstract) counts its whole text for both."""
        import numpy as np

        rows = self._rows_of(store, rowids)
        if not rows:
            return {}
        order = list(rows)
        dim = self.encoder.dim
        whole = best_cosines(*unpack_rows(b"".join(rows[r][0] for r in order), dim), queries)
        best = whole.copy()
        chosen = [i for i, r in enumerate(order) if rows[r][1]]
        if chosen:
            blobs = [rows[order[i]][1] or b"" for i in chosen]
            sims = best_cosines(*unpack_rows(b"".join(blobs), dim), queries)
            counts = [len(b) // (4 + dim) for b in blobs]
            starts = np.cumsum([0, *counts[:-1]])
            best[chosen] = np.maximum.reduceat(sims, starts)
        mixed = (1 - PASSAGE_WEIGHT) * whole + PASSAGE_WEIGHT * best
        return dict(zip(order, mixed.tolist(), strict=True))

    def around(
        self, store: VectorStore, topic: Topic, k: int, pool: Collection[int] = ()
    ) -> tuple[list[tuple[int, float]], dict[int, float]]:
        """The `k` papers most similar to the topic, best first, and the similarity of every
        paper in `pool`, in one pass: the candidates and the pool are scored together."""
        queries = self.query_vectors(topic)
        if queries is None:
            return [], {}
        self.sync(store)
        wide = NEAREST_WIDEN * k
        near = self._closest(store, queries, self._candidates(queries, wide), wide) if k else []
        scores = self._exact(store, queries, {*near, *pool})
        ranked = sorted(((r, scores[r]) for r in near if r in scores), key=lambda p: -p[1])
        return ranked[:k], {r: scores[r] for r in pool if r in scores}

    def similar(
        self,
        store: VectorStore,
        topic: Topic,
        pool: Collection[int] | None = None,
        keep: int = 5000,
    ) -> dict[int, float]:
        """Similarity to the topic (its closest group) by rowid: the papers in `pool`, or without
        one the `keep` papers closest by their whole text."""
        if pool is not None:
            return self.around(store, topic, 0, pool)[1]
        queries = self.query_vectors(topic)
        if queries is None:
            return {}
        self.sync(store)
        closest = self._closest(store, queries, self._candidates(queries, keep), keep)
        return self._exact(store, queries, closest)

    def nearest(self, store: VectorStore, topic: Topic, k: int) -> list[tuple[int, float]]:
        """The `k` most similar papers, best first: (rowid, similarity)."""
        return self.around(store, topic, k)[0]

    def like(self, store: VectorStore, rowid: int, k: int) -> list[tuple[int, float]]:
        """The `k` papers whose whole text is closest to that paper's, best first, itself left
        out: (rowid, cosine). Empty when the paper has no vector yet."""
        import numpy as np

        self.sync(store)
        mine = self._rows_of(store, [rowid]).get(rowid)
        if mine is None:
            return []
        ints, scales = unpack_rows(mine[0], self.encoder.dim)
        query = ints.astype(np.float32) * scales[:, None]
        others = [r for r in self._candidates(query, k + 1) if r != rowid]
        return top_k(*self._whole(store, query, others), k)

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

    def save(self, store: VectorStore, rows: Sequence[tuple[int, bytes, bytes]]) -> None:
        """Store what `embed` computed and add it to the vectors held for candidates."""
        seq = store.put_vectors(self.encoder.name, rows)
        for rowid, _, _ in rows:
            self._rows.pop(rowid, None)
        self.recent.add([(rowid, vector) for rowid, vector, _ in rows])
        if seq == self._seen + 1:
            self._seen = seq


EMBED_BATCH = 64


def embed_missing(
    store: VectorStore, semantic: Semantic, progress: Callable[[int], None] | None = None
) -> int:
    """Compute the vectors the store lacks, newest papers first, in this thread; how many.
    Each batch is stored as it is done, so an interrupted run loses at most one."""
    done = 0
    while todo := store.without_vectors(semantic.encoder.name, EMBED_BATCH):
        semantic.save(store, semantic.embed(todo))
        done += len(todo)
        if progress is not None:
            progress(len(todo))
    return done


def build_index(
    store: VectorStore, model: str, dim: int, progress: Callable[[int], None] | None = None
) -> Path | None:
    """Write the index of the store's vectors (`bot.semantic.ann`) when the store is large
    enough to need one and the newest does not already cover every vector; its folder, or
    None when none was needed."""
    database = store.path()
    count = store.count_vectors(model)
    if database is None or count < ann.ANN_MIN or not ann.available():
        return None
    drop = store.last_drop()
    seq = store.vector_seq(model)
    folder = ann.directory(database)
    current = ann.newest(folder, model)
    covered = {"seq": seq, "drop": drop, "token": store.index_token(model)}
    if current is not None and ann.Ann.meta(current[0]) == covered:
        return current[0]
    path = folder / f"{model}.{seq}"
    token = uuid.uuid4().hex
    ann.build(
        lambda: store.vectors(model),
        lambda: store.all_vector_rows(model),
        count,
        dim,
        path,
        {"seq": seq, "drop": drop, "token": token},
        lambda: store.set_index_token(model, token),
        progress,
    )
    return path
