"""Schema migrations, applied in order by sqlite-utils `Migrations` when a store opens."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("paperbot")

# Porter stemming matches "caching"/"cache" and "experts"/"expert"; remove_diacritics folds "é" to "e".
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"
FTS_COLUMNS = ["title", "summary", "authors", "ai_keywords"]


@migrations()
def m001_papers(db: Database) -> None:
    """Papers, their full-text index (kept in sync by triggers) and the per-source cursors."""
    db["papers"].create(
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
    db["papers"].create_index(["first_seen_at"])
    db["papers"].enable_fts(FTS_COLUMNS, create_triggers=True, tokenize=FTS_TOKENIZE)
    # Document frequencies per term, for weighting rare topic words above common ones.
    db.execute("CREATE VIRTUAL TABLE papers_fts_vocab USING fts5vocab(papers_fts, 'row')")
    db["source_state"].create({"source": str, "cursor": str, "updated_at": str}, pk="source")


def apply(db: Database) -> None:
    """Bring the database schema up to date."""
    migrations.apply(db)


def pending(db: Database) -> list[str]:
    """Names of migrations not yet applied."""
    return [m.name for m in migrations.pending(db)]
