from dataclasses import replace
from datetime import timedelta

from bot.models import Paper
from bot.store import Store
from tests.conftest import NOW


def paper(pid: str = "2401.00001", **kw: object) -> Paper:
    base = Paper(
        id=pid, title="Sparse Mixture of Experts", summary="We route tokens.", sources=("hf",)
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_upsert_updates_in_place_and_keeps_first_seen(store: Store) -> None:
    assert store.upsert_papers([paper(upvotes=3)], NOW).new == 1
    later = NOW + timedelta(days=2)
    stats = store.upsert_papers([paper(upvotes=9)], later)
    assert (stats.new, stats.updated) == (0, 1)
    stored = store.get_paper("2401.00001")
    assert stored is not None
    assert stored.upvotes == 9
    assert stored.first_seen_at == NOW
    assert store.count_papers() == 1
    # The FTS index follows the update instead of duplicating the row.
    rows = store.fts_newest('"experts"', limit=10)
    assert len(rows) == 1


def test_unchanged_reimport_writes_nothing(store: Store) -> None:
    store.upsert_papers([paper()], NOW)
    stats = store.upsert_papers([paper()], NOW + timedelta(hours=1))
    assert (stats.new, stats.updated, stats.unchanged) == (0, 0, 1)


def test_two_sources_merge_into_one_row(store: Store) -> None:
    arxiv = paper(sources=("arxiv",), categories=("cs.LG",), upvotes=None)
    hf = paper(sources=("hf",), upvotes=12, ai_summary="An MoE summary.", summary="")
    stats = store.upsert_papers([arxiv, hf], NOW)
    assert stats.new == 1
    stored = store.get_paper("2401.00001")
    assert stored is not None
    assert stored.sources == ("arxiv", "hf")
    assert stored.categories == ("cs.LG",)
    assert stored.upvotes == 12
    assert stored.ai_summary == "An MoE summary."
    assert stored.summary == "We route tokens."  # an empty field never erases a known one


def test_fts_index_follows_title_changes(store: Store) -> None:
    store.upsert_papers([paper()], NOW)
    store.upsert_papers([paper(title="Speculative decoding")], NOW)
    assert store.fts_newest('"experts"', limit=5) == []
    assert len(store.fts_newest('"speculative"', limit=5)) == 1


def test_wal_and_migrations_on_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot import migrations

    path = tmp_path / "sub" / "p.db"
    s = Store.open(path)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrations.pending(s.db) == []
    s.upsert_papers([paper()], NOW)
    s.close()
    again = Store.open(path)  # re-opening applies nothing twice
    assert again.count_papers() == 1
    again.close()


def test_cursors(store: Store) -> None:
    assert store.get_cursor("hf") is None
    store.set_cursor("hf", "2026-11-19", NOW)
    store.set_cursor("hf", "2026-11-20", NOW)
    assert store.get_cursor("hf") == "2026-11-20"
