from dataclasses import replace
from datetime import timedelta

from bot.models import Paper
from bot.storage import Store
from tests.conftest import NOW


def paper(pid: str = "2401.00001", **kw: object) -> Paper:
    base = Paper(
        id=pid, title="Sparse Mixture of Experts", summary="We route tokens.", sources=("hf",)
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_upsert_updates_in_place_and_keeps_first_seen(store: Store) -> None:
    assert store.papers.upsert([paper(upvotes=3)], NOW).new == 1
    later = NOW + timedelta(days=2)
    stats = store.papers.upsert([paper(upvotes=9)], later)
    assert (stats.new, stats.updated) == (0, 1)
    stored = store.papers.get("2401.00001")
    assert stored is not None
    assert stored.upvotes == 9
    assert stored.first_seen_at == NOW
    assert store.papers.count() == 1
    # The FTS index follows the update instead of duplicating the row.
    rows = store.papers.fts_newest('"experts"', limit=10)
    assert len(rows) == 1


def test_unchanged_reimport_writes_nothing(store: Store) -> None:
    store.papers.upsert([paper()], NOW)
    stats = store.papers.upsert([paper()], NOW + timedelta(hours=1))
    assert (stats.new, stats.updated, stats.unchanged) == (0, 0, 1)


def test_two_sources_merge_into_one_row(store: Store) -> None:
    arxiv = paper(sources=("arxiv",), categories=("cs.LG",), upvotes=None)
    hf = paper(sources=("hf",), upvotes=12, ai_summary="An MoE summary.", summary="")
    stats = store.papers.upsert([arxiv, hf], NOW)
    assert stats.new == 1
    stored = store.papers.get("2401.00001")
    assert stored is not None
    assert stored.sources == ("arxiv", "hf")
    assert stored.categories == ("cs.LG",)
    assert stored.upvotes == 12
    assert stored.ai_summary == "An MoE summary."
    assert stored.summary == "We route tokens."  # an empty field never erases a known one


def test_fts_index_follows_title_changes(store: Store) -> None:
    store.papers.upsert([paper()], NOW)
    store.papers.upsert([paper(title="Speculative decoding")], NOW)
    assert store.papers.fts_newest('"experts"', limit=5) == []
    assert len(store.papers.fts_newest('"speculative"', limit=5)) == 1


def test_wal_and_migrations_on_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "sub" / "p.db"
    s = Store.open(path)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.pending_migrations() == []
    s.papers.upsert([paper()], NOW)
    s.close()
    again = Store.open(path)  # re-opening applies nothing twice
    assert again.papers.count() == 1
    again.close()


def test_cursors(store: Store) -> None:
    assert store.sources.cursor("hf") is None
    store.sources.set_cursor("hf", "2026-11-19", NOW)
    store.sources.set_cursor("hf", "2026-11-20", NOW)
    assert store.sources.cursor("hf") == "2026-11-20"
