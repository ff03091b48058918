from dataclasses import replace
from datetime import timedelta

from bot.models import DigestSettings, Paper
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


def test_workspaces_key_subscribers_after_m014(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlite_utils import Database

    from bot.storage.migrations import migrations

    path = tmp_path / "old.db"
    old = Database(str(path))
    migrations.apply(old, stop_before="m014_workspaces")
    made = "2026-11-01T00:00:00Z"
    for platform, address, workspace in [("slack", "U1", "T1"), ("discord", "42", "G1")]:
        old.execute(
            "INSERT INTO subscribers (platform, kind, address, workspace, tz, digest_time, days, "
            "created_at) VALUES (?, 'user', ?, ?, 'UTC', '09:00', '0,1,2,3,4', ?)",
            [platform, address, workspace, made],
        )
    old.execute(
        "INSERT INTO channel_managers (platform, channel, user_id, created_at) "
        "VALUES ('slack', 'C1', 'U5', ?)",
        [made],
    )
    old.conn.commit()
    old.close()
    store = Store.open(path)
    rows = store.subscribers
    assert rows.find("slack", "user", "U1", "T1") is not None
    # Discord's ids are global: a person's DM subscriptions are one set in every guild.
    assert rows.find("discord", "user", "42") is not None
    # A single-workspace install's channel manager belongs to its one team.
    assert rows.is_channel_manager("slack", "T1", "C1", "U5")
    assert not rows.is_channel_manager("slack", "T2", "C1", "U5")
    # The same user id in another workspace is another subscriber.
    other = rows.create("slack", "user", "U1", "T2", DigestSettings(), NOW, NOW)
    assert other.id != rows.find("slack", "user", "U1", "T1").id  # type: ignore[union-attr]
    store.close()


def test_forgetting_a_workspace_takes_all_that_hangs_on_its_subscribers(store: Store) -> None:
    from bot.storage.signals import Signal

    rows, kept = store.subscribers, {}
    for team in ("T1", "T2"):
        subscriber = rows.create("slack", "user", "U1", team, DigestSettings(), NOW, NOW)
        rows.add_topic(subscriber.id, "kv cache", NOW)
        topic = rows.topics(subscriber.id)[0]
        rows.mute(subscriber.id, "2611.00001", NOW)
        rows.add_channel_manager("slack", team, "C1", "U1", NOW)
        store.signals.record(Signal(topic.id, "2611.00001", True, True), "U1", NOW)
        store.conn.execute(
            "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, window_end, "
            "claimed_at) VALUES (?, '2026-11-20', 'claimed', 'a', 'b', 'c')",
            [subscriber.id],
        )
        store.conn.execute(
            "INSERT INTO digest_messages VALUES (?, '2026-11-20', 0, '{}')", [subscriber.id]
        )
        store.conn.commit()
        kept[team] = subscriber.id
    assert rows.forget_workspace("slack", "T2") == 1
    assert rows.get(kept["T2"]) is None and rows.get(kept["T1"]) is not None
    for table in ("topics", "muted_papers", "deliveries", "digest_messages"):
        owners = store.conn.execute(f"SELECT DISTINCT subscriber_id FROM {table}").fetchall()
        assert owners == [(kept["T1"],)], table
    assert store.conn.execute("SELECT count(*) FROM signals").fetchone() == (1,)
    assert rows.is_channel_manager("slack", "T1", "C1", "U1")
    assert not rows.is_channel_manager("slack", "T2", "C1", "U1")
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert rows.forget_workspace("slack", "T2") == 0  # a second uninstall event is harmless


def test_feed_tokens_are_unique_indexed_and_found_after_m015(store: Store) -> None:
    import sqlite3

    import pytest

    rows = store.subscribers
    a = rows.create("console", "user", "a", "", DigestSettings(), NOW, NOW)
    b = rows.create("console", "user", "b", "", DigestSettings(), NOW, NOW)
    assert rows.feed_token(a.id) is None and rows.by_feed_token("t" * 43) is None
    rows.set_feed_token(a.id, "t" * 43)
    assert rows.feed_token(a.id) == "t" * 43
    assert rows.by_feed_token("t" * 43) == a and rows.feed_token(b.id) is None
    with pytest.raises(sqlite3.IntegrityError):
        rows.set_feed_token(b.id, "t" * 43)
    rows.set_feed_token(a.id, "u" * 43)  # a reset: the old secret finds nobody
    assert rows.by_feed_token("t" * 43) is None and rows.by_feed_token("u" * 43) == a
    plan = store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM subscribers WHERE feed_token = ?", ["u" * 43]
    ).fetchall()
    assert "USING INDEX subscribers_feed_token" in plan[0][3]


def test_sent_digests_newest_first_without_the_unsent(store: Store) -> None:
    from datetime import date

    rows = store.subscribers
    a = rows.create("console", "user", "a", "", DigestSettings(), NOW, NOW)
    for day, status in [("2026-11-18", "sent"), ("2026-11-19", "failed"), ("2026-11-20", "sent")]:
        store.conn.execute(
            "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, window_end, "
            "claimed_at, finished_at, paper_ids) VALUES (?, ?, ?, 'a', 'b', 'c', ?, ?)",
            [a.id, day, status, f"{day}T09:00:00+00:00", f'["{day}"]'],
        )
    store.conn.commit()
    sent = store.ledger.sent(a.id, 10)
    assert [(d.local_date, d.paper_ids) for d in sent] == [
        (date(2026, 11, 20), ("2026-11-20",)),
        (date(2026, 11, 18), ("2026-11-18",)),
    ]
    assert sent[0].sent_at == NOW.replace(day=20, hour=9)
    assert len(store.ledger.sent(a.id, 1)) == 1
