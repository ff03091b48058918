"""Papers: the table, its FTS5 index (kept in sync by triggers) and the papers' vectors.

Every call is plain, short, synchronous work on the store's one connection (see
`bot.storage.Store` and `bot.runtime`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.models import Paper
from bot.storage.times import parse_utc, utc_iso

_BATCH = 500


@dataclass
class UpsertStats:
    """What one upsert batch did."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: UpsertStats) -> None:
        """Accumulate another batch's counts."""
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged


_COLUMNS = [
    "id",
    "title",
    "summary",
    "authors",
    "published",
    "abs_url",
    "pdf_url",
    "hf_url",
    "code_url",
    "categories",
    "upvotes",
    "comments",
    "ai_summary",
    "ai_keywords",
    "sources",
    "first_seen_at",
    "updated_at",
]
_UPSERT_SQL = (
    f"INSERT INTO papers ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("id", "first_seen_at"))
)


def _row_to_paper(row: dict[str, Any]) -> Paper:
    return Paper(
        id=row["id"],
        title=row["title"],
        summary=row["summary"] or "",
        authors=tuple(json.loads(row["authors"] or "[]")),
        published=row["published"],
        abs_url=row["abs_url"],
        pdf_url=row["pdf_url"],
        hf_url=row["hf_url"],
        code_url=row["code_url"],
        categories=tuple(json.loads(row["categories"] or "[]")),
        upvotes=row["upvotes"],
        comments=row["comments"],
        ai_summary=row["ai_summary"],
        ai_keywords=tuple(json.loads(row["ai_keywords"] or "[]")),
        sources=tuple(json.loads(row["sources"] or "[]")),
        first_seen_at=parse_utc(row["first_seen_at"]) if row["first_seen_at"] else None,
    )


def _paper_to_values(paper: Paper, first_seen: str, now: str) -> tuple[Any, ...]:
    return (
        paper.id,
        paper.title,
        paper.summary,
        json.dumps(list(paper.authors), ensure_ascii=False),
        paper.published,
        paper.abs_url,
        paper.pdf_url,
        paper.hf_url,
        paper.code_url,
        json.dumps(list(paper.categories)),
        paper.upvotes,
        paper.comments,
        paper.ai_summary,
        json.dumps(list(paper.ai_keywords), ensure_ascii=False),
        json.dumps(list(paper.sources)),
        first_seen,
        now,
    )


# Papers with no vectors from the model, or (embedded before m009) none for their passages.
_NO_VECTORS = "(v.paper_rowid IS NULL OR v.passages IS NULL)"


def _in_categories(categories: Sequence[str]) -> tuple[str, list[Any]]:
    """SQL on `papers` true for a paper in one of `categories` (lower case) or below one."""
    clauses = []
    params: list[Any] = []
    for category in categories:
        clauses.append("lower(c.value) = ? OR lower(c.value) LIKE ?")
        params += [category, category + ".%"]
    sql = f"EXISTS (SELECT 1 FROM json_each(papers.categories) AS c WHERE {' OR '.join(clauses)})"
    return sql, params


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Papers:
    """The papers table, its FTS5 index and the papers' vectors (the semantic extra)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn = db.conn
        # Match counts by FTS expression; cleared once our writes grow the store by 10%.
        self._count_cache: dict[tuple[str, int], int] = {}
        self._df_cache: dict[tuple[str, int], int] = {}
        # Papers in the store (counted once, then kept up to date by our own writes), and how
        # many there were when the concept counts were last cleared.
        self._total: int | None = None
        self._counted_at = 0

    # -- papers ---------------------------------------------------------------------------

    def upsert(self, papers: Iterable[Paper], now: datetime) -> UpsertStats:
        """Insert new papers and merge fresh listings into known ones, keeping `first_seen_at`."""
        stats = UpsertStats()
        now_text = utc_iso(now)
        batch: list[Paper] = []
        for paper in papers:
            batch.append(paper)
            if len(batch) >= _BATCH:
                stats.add(self._upsert_batch(batch, now_text))
                batch = []
        if batch:
            stats.add(self._upsert_batch(batch, now_text))
        return stats

    def _upsert_batch(self, batch: list[Paper], now_text: str) -> UpsertStats:
        # The same paper twice in one batch (listed by two sources) is merged before it is written.
        incoming: dict[str, Paper] = {}
        for paper in batch:
            incoming[paper.id] = (
                incoming[paper.id].merged_with(paper) if paper.id in incoming else paper
            )
        existing = self.get_many(list(incoming))
        stats = UpsertStats()
        values = []
        for paper_id, paper in incoming.items():
            old = existing.get(paper_id)
            if old is None:
                stats.new += 1
                values.append(_paper_to_values(paper, now_text, now_text))
                continue
            merged = old.merged_with(paper)
            if merged == old:
                stats.unchanged += 1
                continue
            stats.updated += 1
            assert old.first_seen_at is not None
            values.append(_paper_to_values(merged, utc_iso(old.first_seen_at), now_text))
        if values:
            with self._conn:
                self._conn.executemany(_UPSERT_SQL, values)
            self._grew(stats.new)
        return stats

    def get_many(self, ids: Sequence[str]) -> dict[str, Paper]:
        """The stored papers among `ids`, by id."""
        found: dict[str, Paper] = {}
        for chunk in _chunks(list(ids), _BATCH):
            marks = ", ".join("?" for _ in chunk)
            for row in self._db.query(f"SELECT * FROM papers WHERE id IN ({marks})", list(chunk)):
                found[row["id"]] = _row_to_paper(row)
        return found

    def get(self, paper_id: str) -> Paper | None:
        """One stored paper, or None."""
        return self.get_many([paper_id]).get(paper_id)

    def rowid_of(self, paper_id: str) -> int | None:
        """The paper's SQLite rowid (its key in the FTS index and `paper_vectors`), or None."""
        row = self._conn.execute("SELECT rowid FROM papers WHERE id = ?", [paper_id]).fetchone()
        return int(row[0]) if row else None

    def by_rowid(self, rowids: Sequence[int]) -> dict[int, Paper]:
        """Stored papers by SQLite rowid (what the FTS index returns)."""
        found: dict[int, Paper] = {}
        for chunk in _chunks(list(rowids), _BATCH):
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT rowid AS _rowid, * FROM papers WHERE rowid IN ({marks})"
            for row in self._db.query(sql, list(chunk)):
                found[row.pop("_rowid")] = _row_to_paper(row)
        return found

    def count(self) -> int:
        """How many papers the store holds (counted once, then followed through our writes)."""
        # count(*) reads the whole table: 2 ms at 100k papers, paid by every look-up otherwise.
        if self._total is None:
            self._total = int(self._conn.execute("SELECT count(*) FROM papers").fetchone()[0])
            self._counted_at = self._total
        return self._total

    def _grew(self, new: int) -> None:
        if not new:
            return
        if self._total is None:  # not counted yet: nothing to follow, start afresh
            self._count_cache.clear()
            self._df_cache.clear()
            return
        self._total += new
        # Concept counts only weight rare words over common ones: 10% more papers barely change
        # that, and recounting on every write would make each look-up during an ingest recount.
        if self._total - self._counted_at >= max(1, self._counted_at // 10):
            self._count_cache.clear()
            self._df_cache.clear()
            self._counted_at = self._total

    def fts_newest(self, match: str, *, limit: int, categories: Sequence[str] = ()) -> list[int]:
        """Rowids of the newest `limit` papers matching an FTS5 expression, newest first.

        Newest by rowid (the order papers were first stored), which FTS5 walks backwards and
        stops at `limit`: the cost stays flat as the store grows. (Ranking by bm25 in SQLite
        would read every phrase's statistics over the whole index: 150-370 ms at 1M papers.)
        `match` must come from `bot.topics` (already escaped); with `categories`, only papers
        in one of them (or a subcategory: `cs` takes `cs.CL`) count.
        """
        join, extra, params = "", "", list[Any]()
        if categories:
            join = "JOIN papers ON papers.rowid = papers_fts.rowid"
            where, params = _in_categories(categories)
            extra = f"AND {where}"
        sql = (
            f"SELECT papers_fts.rowid FROM papers_fts {join} WHERE papers_fts MATCH ? {extra} "
            "ORDER BY papers_fts.rowid DESC LIMIT ?"
        )
        return [int(r[0]) for r in self._conn.execute(sql, [match, *params, limit])]

    def fts_between(self, match: str, low: int, high: int) -> set[int]:
        """Rowids in [low, high] matching an FTS5 expression (a digest window's candidates)."""
        sql = "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? AND rowid BETWEEN ? AND ?"
        return {int(r[0]) for r in self._conn.execute(sql, [match, low, high])}

    def recent_rowids(self, *, limit: int, categories: Sequence[str] = ()) -> list[int]:
        """Rowids of the most recently first-seen papers, optionally only in `categories`."""
        where, params = _in_categories(categories) if categories else ("", [])
        sql = (
            f"SELECT rowid FROM papers {('WHERE ' + where) if where else ''} "
            "ORDER BY first_seen_at DESC LIMIT ?"
        )
        return [int(r[0]) for r in self._conn.execute(sql, [*params, limit])]

    def first_seen_between(self, start: datetime, end: datetime) -> list[int]:
        """Rowids of the papers this store first saw in (start, end], oldest first."""
        return [
            int(r[0])
            for r in self._conn.execute(
                "SELECT rowid FROM papers WHERE first_seen_at > ? AND first_seen_at <= ? "
                "ORDER BY first_seen_at",
                [utc_iso(start), utc_iso(end)],
            )
        ]

    def count_matches(self, match: str, cap: int) -> int:
        """How many papers match an FTS5 expression, up to `cap` (memoised until 10% growth)."""
        key = (match, cap)
        found = self._count_cache.get(key)
        if found is None:
            if len(self._count_cache) > 10_000:
                self._count_cache.clear()
            sql = "SELECT count(*) FROM (SELECT 1 FROM papers_fts WHERE papers_fts MATCH ? LIMIT ?)"
            found = self._count_cache[key] = int(
                self._conn.execute(sql, [match, cap]).fetchone()[0]
            )
        return found

    def doc_freq(self, terms: Collection[str], cap: int) -> dict[str, int]:
        """How many papers hold each of the index's terms (Porter stems), up to `cap`; terms no
        paper holds are left out. Memoised like `count_matches`.

        The vocabulary table counts exactly but walks a term's whole list of papers (a
        millisecond and more for a common term at 20k papers), so a term is first counted
        through the index, which stops at `cap`: only rarer terms are then counted exactly.
        """
        missing = [t for t in terms if (t, cap) not in self._df_cache]
        if missing:
            if len(self._df_cache) > 200_000:
                self._df_cache.clear()
            capped = (
                "SELECT count(*) FROM (SELECT 1 FROM papers_fts WHERE papers_fts MATCH ? LIMIT ?)"
            )
            exact = "SELECT doc FROM papers_fts_vocab WHERE term = ?"
            for term in missing:
                # A term is alphanumeric (`bot.topics.words`): quoted, it is a safe FTS5 phrase.
                count = int(self._conn.execute(capped, [f'"{term}"', cap]).fetchone()[0])
                if count < cap:
                    row = self._conn.execute(exact, [term]).fetchone()
                    count = min(int(row[0]), cap) if row else 0
                self._df_cache[(term, cap)] = count
        return {t: self._df_cache[(t, cap)] for t in terms if self._df_cache[(t, cap)]}

    # -- paper vectors (the optional semantic extra; see bot.semantic) --------------------------

    def without_vectors(self, model: str, limit: int) -> list[tuple[int, str, str | None]]:
        """Up to `limit` papers lacking vectors from `model`, newest first: (rowid, title,
        abstract). A paper embedded before passages were stored (migration m009) lacks them."""
        sql = (
            "SELECT p.rowid, p.title, p.summary FROM papers AS p "
            "LEFT JOIN paper_vectors AS v ON v.paper_rowid = p.rowid AND v.model = ? "
            f"WHERE {_NO_VECTORS} ORDER BY p.rowid DESC LIMIT ?"
        )
        return [(int(r[0]), r[1], r[2]) for r in self._conn.execute(sql, [model, limit])]

    def count_without_vectors(self, model: str) -> int:
        """How many papers lack vectors from `model` (for progress bars)."""
        sql = (
            "SELECT count(*) FROM papers AS p LEFT JOIN paper_vectors AS v "
            f"ON v.paper_rowid = p.rowid AND v.model = ? WHERE {_NO_VECTORS}"
        )
        return int(self._conn.execute(sql, [model]).fetchone()[0])

    def put_vectors(self, model: str, rows: Sequence[tuple[int, bytes, bytes]]) -> int:
        """Store (rowid, paper vector, its passages' vectors) rows, replacing older ones; the
        write's `seq` (every row of one call shares it, later calls get higher ones)."""
        with self._conn:
            seq = self.vector_seq(model) + 1
            self._conn.executemany(
                "INSERT OR REPLACE INTO paper_vectors (paper_rowid, model, vec, passages, seq) "
                "VALUES (?, ?, ?, ?, ?)",
                [(rowid, model, vec, passages, seq) for rowid, vec, passages in rows],
            )
        return seq

    def clear_vectors(self) -> None:
        """Forget every stored vector (`paperbot reindex --semantic --force`)."""
        with self._conn:
            self._conn.execute("DELETE FROM paper_vectors")
            # Every vector goes, and `reindex --force` removes the index that copied them.
            self._conn.execute("DELETE FROM vector_drops")

    def last_drop(self) -> int:
        """The id of the latest vector dropped (0 when none was)."""
        row = self._conn.execute("SELECT max(id) FROM vector_drops").fetchone()
        return int(row[0] or 0)

    def dropped(self, model: str, after: int) -> set[int]:
        """The papers whose `model` vector was dropped after the drop id `after`."""
        sql = "SELECT paper_rowid FROM vector_drops WHERE id > ? AND model = ?"
        return {int(r[0]) for r in self._conn.execute(sql, [after, model])}

    def index_token(self, model: str) -> str | None:
        """The token of the vector index last built from this database for `model`."""
        row = self._conn.execute("SELECT token FROM vector_index WHERE model = ?", [model])
        found = row.fetchone()
        return None if found is None else str(found[0])

    def set_index_token(self, model: str, token: str) -> None:
        """Record the token of the vector index being built for `model`."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO vector_index (model, token) VALUES (?, ?)", [model, token]
            )

    def vector_summary(self) -> dict[str, tuple[int, int]]:
        """By model: how many papers have its vector, and the latest write's `seq`."""
        sql = "SELECT model, count(*), max(seq) FROM paper_vectors GROUP BY model"
        return {str(m): (int(n), int(seq or 0)) for m, n, seq in self._conn.execute(sql)}

    def vector_seq(self, model: str) -> int:
        """The `seq` of the latest write of `model`'s vectors (0 when there is none)."""
        sql = "SELECT max(seq) FROM paper_vectors WHERE model = ?"
        return int(self._conn.execute(sql, [model]).fetchone()[0] or 0)

    def count_vectors(self, model: str) -> int:
        """How many papers have a vector from `model`."""
        sql = "SELECT count(*) FROM paper_vectors WHERE model = ?"
        return int(self._conn.execute(sql, [model]).fetchone()[0])

    def all_vector_rows(self, model: str) -> Iterator[tuple[int, bytes, bytes | None]]:
        """Every stored (rowid, vector, passage vectors or None) of `model`, by rowid."""
        sql = "SELECT paper_rowid, vec, passages FROM paper_vectors WHERE model = ? ORDER BY 1"
        for rowid, vec, passages in self._conn.execute(sql, [model]):
            yield int(rowid), bytes(vec), None if passages is None else bytes(passages)

    def vectors(self, model: str, after: int = 0) -> Iterator[tuple[int, bytes]]:
        """Every stored (rowid, vector bytes) of `model`, or those written after the `seq`
        `after`, by rowid."""
        sql = (
            "SELECT paper_rowid, vec FROM paper_vectors WHERE model = ? AND seq > ? "
            "ORDER BY paper_rowid"
        )
        for rowid, blob in self._conn.execute(sql, [model, after]):
            yield int(rowid), bytes(blob)

    def vector_rows(
        self, model: str, rowids: Collection[int]
    ) -> Iterator[tuple[int, bytes, bytes | None]]:
        """(rowid, vector, passage vectors end to end or None) of those papers with a vector."""
        sql = (
            "SELECT paper_rowid, vec, passages FROM paper_vectors WHERE model = ? AND "
            "paper_rowid IN (SELECT value FROM json_each(?))"
        )
        for rowid, vec, passages in self._conn.execute(sql, [model, json.dumps(list(rowids))]):
            yield int(rowid), bytes(vec), None if passages is None else bytes(passages)

    def path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        file = str(self._conn.execute("PRAGMA database_list").fetchone()[2])
        return Path(file) if file else None
