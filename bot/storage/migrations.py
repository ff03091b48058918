"""Schema migrations, applied in order by sqlite-utils `Migrations` when a store opens."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("paperbot")

# Porter stemming matches "caching"/"cache" and "experts"/"expert"; diacritics are folded.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"
FTS_COLUMNS = ["title", "summary", "authors", "ai_keywords"]


@migrations()
def m001_papers(db: Database) -> None:
    """Papers, their full-text index (kept in sync by triggers) and the per-source cursors."""
    db.table("papers").create(
        {
            "id": str,
            "title": str,
            "summary": str,
            "authors": str,  # JSON array of names
            "published": str,
            "abs_url": str,
            "pdf_url": str,
            "hf_url": str,
            "code_url": str,
            "categories": str,  # JSON array
            "upvotes": int,
            "comments": int,
            "ai_summary": str,
            "ai_keywords": str,  # JSON array
            "sources": str,  # JSON array
            "first_seen_at": str,  # ISO 8601 UTC: when this store first saw the paper
            "updated_at": str,
        },
        pk="id",
        not_null={"title", "first_seen_at"},
    )
    db.table("papers").create_index(["first_seen_at"])
    db.table("papers").enable_fts(FTS_COLUMNS, create_triggers=True, tokenize=FTS_TOKENIZE)
    # Document frequencies per term, for weighting rare topic words above common ones.
    db.execute("CREATE VIRTUAL TABLE papers_fts_vocab USING fts5vocab(papers_fts, 'row')")
    db.table("source_state").create({"source": str, "cursor": str, "updated_at": str}, pk="source")


def apply(db: Database) -> None:
    """Bring the database schema up to date."""
    migrations.apply(db)


def pending(db: Database) -> list[str]:
    """Names of migrations not yet applied."""
    return [m.name for m in migrations.pending(db)]


@migrations()
def m002_subscriptions(db: Database) -> None:
    """Subscribers (a person or a channel), their topics, muted papers and the digest ledger."""
    db.table("subscribers").create(
        {
            "id": int,
            "platform": str,  # "slack", "discord", "console"
            "kind": str,  # "user" (digests by DM) or "channel"
            "address": str,  # the platform's user or channel id
            "workspace": str,  # Slack team or Discord guild id ("" when none)
            "tz": str,  # IANA time zone
            "digest_time": str,  # local "HH:MM"
            "days": str,  # comma-separated weekday numbers, Monday = 0
            "max_papers": int,
            "paused": int,
            "undeliverable": str,  # why the destination is gone, or NULL
            "undeliverable_notified": int,
            "created_at": str,
            "next_due_at": str,  # UTC; what the digest tick looks at
        },
        pk="id",
        not_null={"platform", "kind", "address", "tz", "digest_time", "days", "created_at"},
        defaults={"workspace": "", "paused": 0, "max_papers": 10, "undeliverable_notified": 0},
    )
    db.table("subscribers").create_index(["platform", "kind", "address"], unique=True)
    db.table("subscribers").create_index(["next_due_at"])
    db.table("topics").create(
        {"id": int, "subscriber_id": int, "text": str, "key": str, "created_at": str},
        pk="id",
        foreign_keys=[("subscriber_id", "subscribers", "id")],
        not_null={"subscriber_id", "text", "key", "created_at"},
    )
    db.table("topics").create_index(["subscriber_id", "key"], unique=True)
    db.table("muted_papers").create(
        {"subscriber_id": int, "paper_id": str, "created_at": str},
        pk=("subscriber_id", "paper_id"),
        foreign_keys=[("subscriber_id", "subscribers", "id")],
    )
    # One row per subscriber and local digest date: claimed before sending, marked after, so a
    # restart neither repeats nor loses a digest.
    db.table("deliveries").create(
        {
            "subscriber_id": int,
            "local_date": str,
            "status": str,  # claimed, sent, empty, failed
            "window_start": str,  # papers first seen after this ...
            "window_end": str,  # ... and up to this (UTC)
            "claimed_at": str,
            "finished_at": str,
            "message_id": str,
            "paper_ids": str,  # JSON array
            "error": str,
        },
        pk=("subscriber_id", "local_date"),
        foreign_keys=[("subscriber_id", "subscribers", "id")],
        not_null={"status", "window_start", "window_end", "claimed_at"},
    )
    db.table("deliveries").create_index(["status"])


@migrations()
def m003_delivery_attempts(db: Database) -> None:
    """Send attempts and the earliest retry time, so a transient failure is retried, not lost."""
    db.table("deliveries").add_column("attempts", int, not_null_default=0)
    db.table("deliveries").add_column("retry_at", str)  # UTC; NULL = retry at once


@migrations()
def m004_channel_managers(db: Database) -> None:
    """People who may manage a channel's subscriptions besides admins (who added the bot)."""
    db.table("channel_managers").create(
        {"platform": str, "channel": str, "user_id": str, "created_at": str},
        pk=("platform", "channel", "user_id"),
    )


@migrations()
def m005_ingest_status(db: Database) -> None:
    """When each source last succeeded and last failed, for health checks and `doctor`."""
    db.table("ingest_status").create(
        {"source": str, "last_success_at": str, "last_failure_at": str, "last_error": str},
        pk="source",
    )


@migrations()
def m006_fts_automerge(db: Database) -> None:
    """Merge index segments in larger steps: bulk import 5,800 -> 6,600 papers/s (benchmarks)."""
    db.execute("INSERT INTO papers_fts(papers_fts, rank) VALUES('automerge', 8)")


@migrations()
def m007_delivery_failures(db: Database) -> None:
    """Failed sends, apart from sends started (`attempts`), which a killed process also counts."""
    db.table("deliveries").add_column("failures", int, not_null_default=0)


@migrations()
def m008_paper_vectors(db: Database) -> None:
    """Sentence embeddings of papers for the optional semantic extra (bot.semantic).

    Keyed by the paper's rowid, as the FTS index is. A vector is dropped when its paper's title
    or abstract changes, so it is computed again from the new text.
    """
    db.execute(
        "CREATE TABLE paper_vectors (paper_rowid INTEGER PRIMARY KEY, model TEXT NOT NULL, "
        "vec BLOB NOT NULL)"
    )
    db.execute(
        "CREATE TRIGGER paper_vectors_stale AFTER UPDATE OF title, summary ON papers "
        "WHEN old.title IS NOT new.title OR old.summary IS NOT new.summary "
        "BEGIN DELETE FROM paper_vectors WHERE paper_rowid = old.rowid; END"
    )
    db.execute(
        "CREATE TRIGGER paper_vectors_gone AFTER DELETE ON papers "
        "BEGIN DELETE FROM paper_vectors WHERE paper_rowid = old.rowid; END"
    )


@migrations()
def m009_passage_vectors(db: Database) -> None:
    """Vectors of an abstract's passages beside the paper's own (bot.semantic): a short topic is
    closer to the sentences about it than to a whole abstract. Papers embedded before this
    have none and are embedded again."""
    db.execute("ALTER TABLE paper_vectors ADD COLUMN passages BLOB")


@migrations()
def m010_digest_messages(db: Database) -> None:
    """How far each digest's messages got, so a crash leaves only the messages in flight
    uncertain and a digest of several messages resumes where it stopped.

    Messages go out in order: `sent_parts` of a row's `parts` are posted (`message_ids`, a
    JSON array); `sending_at` is set while the next one is being posted. `digest_messages`
    keeps the rendered messages of a digest of several until it is complete. Digests claimed
    before this may have been posted whole: they get `sending_at`, so the next start looks
    them up before sending anything.
    """
    deliveries = db.table("deliveries")
    deliveries.add_column("parts", int)  # how many messages; NULL until rendered
    deliveries.add_column("sent_parts", int, not_null_default=0)
    deliveries.add_column("message_ids", str)  # JSON array, in order
    deliveries.add_column("sending_at", str)  # UTC, when the post in flight began
    db.execute("UPDATE deliveries SET sending_at = claimed_at WHERE status = 'claimed'")
    # WITHOUT ROWID: rows are only ever found by this key.
    db.execute(
        "CREATE TABLE digest_messages (subscriber_id INTEGER NOT NULL, "
        "local_date TEXT NOT NULL, part INTEGER NOT NULL, body TEXT NOT NULL, "
        "PRIMARY KEY (subscriber_id, local_date, part)) WITHOUT ROWID"
    )


@migrations()
def m011_drop_undeliverable_notified(db: Database) -> None:
    """`subscribers.undeliverable_notified` was written and never read: the notice that a
    destination was gone is shown once because `clear_undeliverable` clears the reason."""
    db.execute("ALTER TABLE subscribers DROP COLUMN undeliverable_notified")


@migrations()
def m012_signals(db: Database) -> None:
    """What readers taught a topic subscription: papers marked relevant or not relevant
    (`bot.learning`), and whether the topic matched the paper when it was marked. One
    row per topic and paper, the latest click wins; a topic's signals go with it."""
    db.execute(
        "CREATE TABLE signals (topic_id INTEGER NOT NULL REFERENCES topics(id) ON DELETE CASCADE,"
        " paper_id TEXT NOT NULL, relevant INTEGER NOT NULL, matched INTEGER NOT NULL,"
        " by_user TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (topic_id, paper_id))"
        " WITHOUT ROWID"
    )


@migrations()
def m013_vector_seq(db: Database) -> None:
    """What a process needs to follow the store's vectors from their index (`bot.semantic.ann`):
    a write counter on paper vectors (the index says up to which `seq` it holds; rows from
    before get 0, so an index built later covers them), a log of the vectors dropped (a
    paper's text changed, or it went), so that the index's copy of them is not used, and the
    token of the index last built from this database (an index whose token differs was built
    from another copy of it, such as the timeline a restored backup undid)."""
    db.table("paper_vectors").add_column("seq", int, not_null_default=0)
    db.execute("CREATE INDEX paper_vectors_seq ON paper_vectors (model, seq)")
    db.execute(
        "CREATE TABLE vector_drops (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "paper_rowid INTEGER NOT NULL, model TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE vector_index (model TEXT PRIMARY KEY, token TEXT NOT NULL)")
    db.execute(
        "CREATE TRIGGER paper_vectors_dropped AFTER DELETE ON paper_vectors "
        "BEGIN INSERT INTO vector_drops (paper_rowid, model) VALUES (old.paper_rowid, old.model);"
        " END"
    )


@migrations()
def m014_workspaces(db: Database) -> None:
    """Subscribers and channel managers keyed by workspace too: a Slack app installed in many
    workspaces sees the same user or channel id in two of them (Enterprise Grid shares ids).

    `workspace` is the namespace a platform's ids are unique in: the Slack team; "" where ids
    are global (Discord's snowflakes, the console), so Discord rows, which held the guild a
    command came from, get "" and a person's DM subscriptions stay one set in every guild.
    Channel managers recorded before this get the one Slack team of the subscribers, when
    there is exactly one (a single-workspace install); otherwise "" (admins still manage).
    """
    db.execute("UPDATE subscribers SET workspace = '' WHERE platform != 'slack'")
    db.execute("DROP INDEX idx_subscribers_platform_kind_address")
    db.execute(
        "CREATE UNIQUE INDEX subscribers_address "
        "ON subscribers (platform, workspace, kind, address)"
    )
    db.table("channel_managers").add_column("workspace", str, not_null_default="")
    teams = [
        str(row[0])
        for row in db.execute(
            "SELECT DISTINCT workspace FROM subscribers "
            "WHERE platform = 'slack' AND workspace != ''"
        )
    ]
    if len(teams) == 1:
        db.execute("UPDATE channel_managers SET workspace = ? WHERE platform = 'slack'", teams)
    db.table("channel_managers").transform(pk=("platform", "workspace", "channel", "user_id"))


@migrations()
def m015_feed_tokens(db: Database) -> None:
    """The secret in the address of each subscriber's private Atom feed (`bot.feeds`): NULL
    until `/papers feed` makes one, replaced by `/papers feed reset`, found by its index.

    Kept as it is, not hashed: `/papers feed` shows the address again whenever asked (a Slack
    ephemeral reply does not last), as calendar and feed services do with secret addresses. It
    grants reading that subscriber's digest papers, which the database holds anyway.
    """
    db.execute("ALTER TABLE subscribers ADD COLUMN feed_token TEXT")
    db.execute(
        "CREATE UNIQUE INDEX subscribers_feed_token ON subscribers (feed_token) "
        "WHERE feed_token IS NOT NULL"
    )
