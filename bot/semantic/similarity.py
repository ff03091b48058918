"""The facade: one encoder and one store's paper vectors, asked how similar papers are.

Look-ups and digests call `Semantic`; `embed_missing` fills a store in one thread (`paperbot
reindex --semantic`). What a paper and a topic are embedded as (`paper_texts`, `group_text`)
lives here too: both sides of a cosine are chosen together.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from bot.semantic.model import Encoder
from bot.semantic.vectors import VectorIndex, VectorStore, pack, top_k, unpack_rows
from bot.topics import Group, Topic

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


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

    def sync(self, store: VectorStore) -> VectorIndex:
        """The index, first (re)loaded from the store when it is new or another process wrote."""
        version = store.data_version()
        if version != self._version:
            self.index = VectorIndex(self.encoder.dim)
            self.index.add(list(store.vectors(self.encoder.name)))
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
        self, store: VectorStore, rowids: Sequence[int]
    ) -> dict[int, tuple[NDArray[np.int8], NDArray[np.float32]]]:
        found = {r: self._passages[r] for r in rowids if r in self._passages}
        missing = [r for r in rowids if r not in found]
        for rowid, blob in store.passages(self.encoder.name, missing) if missing else ():
            found[rowid] = self._passages[rowid] = unpack_rows(blob, self.encoder.dim)
        while len(self._passages) > PASSAGE_CACHE:
            self._passages.popitem(last=False)
        return found

    def _mixed(
        self,
        store: VectorStore,
        queries: NDArray[np.float32],
        rowids: NDArray[np.int64],
        whole: Any,
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
        self,
        store: VectorStore,
        topic: Topic,
        pool: Collection[int] | None,
        keep: int | None = None,
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
        self,
        store: VectorStore,
        topic: Topic,
        pool: Collection[int] | None = None,
        keep: int = 5000,
    ) -> dict[int, float]:
        """Similarity to the topic (its closest group) by rowid: the papers in `pool`, or without
        one the `keep` papers closest by their whole text."""
        found = self._scores(store, topic, pool, None if pool is not None else keep)
        if found is None:
            return {}
        rowids, best = found
        return dict(zip(rowids.tolist(), best.tolist(), strict=True))

    def nearest(self, store: VectorStore, topic: Topic, k: int) -> list[tuple[int, float]]:
        """The `k` most similar papers, best first: (rowid, similarity)."""
        found = self._scores(store, topic, None, NEAREST_WIDEN * k)
        return [] if found is None else top_k(*found, k)

    def like(self, store: VectorStore, rowid: int, k: int) -> list[tuple[int, float]]:
        """The `k` papers whose whole text is closest to that paper's, best first, itself left
        out: (rowid, cosine). Empty when the paper has no vector yet."""
        index = self.sync(store)
        query = index.vector(rowid)
        if query is None:
            return []
        rowids, cosine = index.scores(query[None, :])
        others = rowids != rowid
        return top_k(rowids[others], cosine[others], k)

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
        """Store what `embed` computed and add it to the index."""
        store.put_vectors(self.encoder.name, rows)
        for rowid, _, _ in rows:
            self._passages.pop(rowid, None)
        self.sync(store).add([(rowid, vector) for rowid, vector, _ in rows])


EMBED_BATCH = 64


def embed_missing(
    store: VectorStore, semantic: Semantic, progress: Callable[[int], None] | None = None
) -> int:
    """Compute the vectors the store lacks, newest papers first, in this thread; how many."""
    done = 0
    while todo := store.without_vectors(semantic.encoder.name, EMBED_BATCH):
        semantic.save(store, semantic.embed(todo))
        done += len(todo)
        if progress is not None:
            progress(len(todo))
    return done
