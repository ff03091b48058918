"""The core's commands of `paperbot`: import, search, match, feedback, ingest, reindex, backup.

Each is a plain click command run with the loaded `Settings` as its object; the one `paperbot`
group that serves them, beside the commands that start adapters, is composed in
`adapters/cli.py` (the core never imports an adapter).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bot.config import Settings
from bot.errors import InvalidQuery, PaperbotError
from bot.importer import ImportReport, import_records, read_file
from bot.learning import Profile, load_profiles
from bot.models import SearchHit
from bot.search import matches, search
from bot.semantic import Semantic, ann, build_index, embed_missing, load_encoder
from bot.storage import Store
from bot.storage.backup import BackupError, backup
from bot.subscriptions import Subscriptions
from bot.topics import parse

log = logging.getLogger("paperbot")


def hit_to_json(hit: SearchHit) -> dict[str, Any]:
    """The JSON object `--json` prints for one result."""
    paper = hit.paper
    return {
        "id": paper.id,
        "title": paper.title,
        "score": hit.score,
        "matched": [
            {
                "concept": r.concept,
                "text": r.matched,
                "field": r.field,
                "related": r.related,
                "similarity": r.similarity,
            }
            for r in hit.reasons
        ],
        "why": hit.why(),
        "links": paper.links,
        "authors": list(paper.authors),
        "published": paper.published,
        "upvotes": paper.upvotes,
        "ai_summary": paper.ai_summary,
        "first_seen_at": paper.first_seen_at.isoformat() if paper.first_seen_at else None,
    }


def _print_hits(hits: list[SearchHit], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([hit_to_json(h) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("No papers found.")
        return
    for number, hit in enumerate(hits, start=1):
        paper = hit.paper
        extra = f"  [{paper.upvotes} upvotes]" if paper.upvotes else ""
        click.echo(f"{number:>2}. {paper.title}{extra}")
        link = paper.links.get("abstract") or next(iter(paper.links.values()), "")
        click.echo(f"    {paper.id}  {link}".rstrip())
        click.echo(f"    why: {hit.why()}")


def load_semantic(settings: Settings) -> Semantic | None:
    """The semantic extra, when it is on and installed; None means matching by words alone."""
    if settings.semantic != "auto":
        return None
    encoder = load_encoder()
    return None if encoder is None else Semantic(encoder)


@contextmanager
def _open_store(settings: Settings) -> Iterator[Store]:
    store = Store.open(settings.db_path)
    try:
        yield store
    finally:
        store.close()


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
def import_command(settings: Settings, files: tuple[Path, ...]) -> None:
    """Import papers from JSON Lines files or Hugging Face Daily Papers responses."""
    report = ImportReport()
    now = datetime.now(UTC)
    with _open_store(settings) as store:
        for path in files:
            try:
                records = list(read_file(path))
            except OSError as exc:
                click.echo(f"{path}: cannot read: {exc.strerror or exc}", err=True)
                sys.exit(1)
            with click.progressbar(records, label=f"Importing {path.name}", file=sys.stderr) as bar:
                import_records(store, str(path), bar, now, report)
        for problem in report.problems:
            click.echo(f"skipped {problem}", err=True)
        click.echo(
            f"Imported: {report.summary()}. The store now has {store.papers.count()} papers."
        )


_USER_HELP = (
    "Apply what the console user NAME (the subscriber console:NAME) taught this topic, "
    "and NAME's muted papers."
)


@dataclass(frozen=True)
class _Reader:
    """A console user's view of a topic: what they taught it and what they muted."""

    profile: Profile | None = None
    muted: frozenset[str] = frozenset()

    def keep(self, hits: list[SearchHit]) -> list[SearchHit]:
        return [h for h in hits if h.paper.id not in self.muted]


def _reader(store: Store, name: str | None, topic: str) -> _Reader:
    if name is None:
        return _Reader()
    subscriber = store.subscribers.find("console", "user", name)
    if subscriber is None:
        click.echo(f"console:{name} has no subscriptions: nothing learned applies.", err=True)
        return _Reader()
    muted = frozenset(store.subscribers.muted(subscriber.id))
    followed = Subscriptions(store).followed(subscriber.id, topic)
    if followed is None:
        click.echo(f"console:{name} does not follow `{topic}`: only their mutes apply.", err=True)
        return _Reader(muted=muted)
    return _Reader(load_profiles(store, [followed.id]).get(followed.id), muted)


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option("--user", "user", metavar="NAME", help=_USER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def search_command(
    settings: Settings, query: tuple[str, ...], limit: int, user: str | None, as_json: bool
) -> None:
    """Ranked look-up: what `/papers QUERY` shows."""
    text = " ".join(query)
    with _open_store(settings) as store:
        reader = _reader(store, user, text)
        try:
            hits = search(
                store,
                text,
                limit=limit + len(reader.muted),
                semantic=load_semantic(settings),
                profile=reader.profile,
            )
        except InvalidQuery as exc:
            click.echo(f"Invalid query: {exc}", err=True)
            sys.exit(2)
        _print_hits(reader.keep(hits)[:limit], as_json)


@click.command("match")
@click.argument("topic", nargs=-1, required=True)
@click.option("--user", "user", metavar="NAME", help=_USER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_obj
def match_command(
    settings: Settings, topic: tuple[str, ...], user: str | None, as_json: bool
) -> None:
    """Every stored paper a subscription to TOPIC would put in a digest."""
    text = " ".join(topic)
    with _open_store(settings) as store:
        reader = _reader(store, user, text)
        try:
            hits = matches(store, text, semantic=load_semantic(settings), profile=reader.profile)
        except InvalidQuery as exc:
            click.echo(f"Invalid topic: {exc}", err=True)
            sys.exit(2)
        _print_hits(reader.keep(hits), as_json)


@click.command("feedback")
@click.option("--user", "user", metavar="NAME", required=True, help="The console user NAME.")
@click.option("--topic", required=True, help="The topic the signals teach (followed if needed).")
@click.option("--good", multiple=True, metavar="ID", help="A paper id to mark relevant.")
@click.option("--bad", multiple=True, metavar="ID", help="A paper id to mark not relevant.")
@click.pass_obj
def feedback_command(
    settings: Settings, user: str, topic: str, good: tuple[str, ...], bad: tuple[str, ...]
) -> None:
    """Mark papers relevant or not relevant to a console user's topic, as the buttons do."""
    both = set(good) & set(bad)
    if both:
        click.echo(f"{sorted(both)[0]} is marked both relevant and not relevant.", err=True)
        sys.exit(2)
    now = datetime.now(UTC)
    with _open_store(settings) as store:
        known = store.papers.get_many([*good, *bad])
        unknown = [pid for pid in (*good, *bad) if pid not in known]
        if unknown:
            click.echo(f"Unknown paper id: {unknown[0]} (nothing recorded).", err=True)
            sys.exit(2)
        subs = Subscriptions(store, load_semantic(settings))
        try:
            parse(topic)  # refused before anything is saved
        except InvalidQuery as exc:
            click.echo(f"Invalid topic: {exc}", err=True)
            sys.exit(2)
        reader = subs.get_or_create("console", "user", user, "", now)
        try:
            subs.add_topic(reader.id, topic, now)
        except PaperbotError as exc:  # already following the most topics there can be
            click.echo(str(exc), err=True)
            sys.exit(2)
        followed = subs.find_topic(reader.id, topic)
        with store.transaction():
            for paper_id in good:
                subs.record(followed, known[paper_id], True, user, now)
            for paper_id in bad:
                subs.record(followed, known[paper_id], False, user, now)
            # Not relevant also mutes, as the button does.
            for paper_id in bad:
                store.subscribers.mute(reader.id, paper_id, now)
        count = store.signals.counts([followed.id]).get(followed.id)
        total = f"{count.relevant} relevant, {count.not_relevant} not relevant" if count else "none"
        click.echo(
            f"Recorded {len(good)} relevant and {len(bad)} not relevant for console:{user}'s "
            f"`{followed.text}` (it has learned from {total})."
        )


@click.command("ingest")
@click.option(
    "--source", type=click.Choice(["all", "hf", "arxiv"]), default="all", show_default=True
)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First date to fetch.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last date to fetch.")
@click.pass_obj
def ingest_command(
    settings: Settings, source: str, since: datetime | None, until: datetime | None
) -> None:
    """Pull new papers from Hugging Face and arXiv into the store."""
    from bot.ingest import run_ingest
    from bot.runtime import StoreRunner

    async def main() -> int:
        runner = StoreRunner(Store.open(settings.db_path))
        try:
            report = await run_ingest(
                settings,
                runner,
                datetime.now(UTC),
                source,
                since.date() if since else None,
                until.date() if until else None,
                progress=lambda line: click.echo(line, err=True),
                semantic=load_semantic(settings),
            )
        finally:
            await runner.close()
        for name, part in report.sources.items():
            click.echo(f"{name}: {part.summary()}")
        return 1 if report.failed else 0

    sys.exit(asyncio.run(main()))


@click.command("reindex")
@click.option("--semantic", is_flag=True, help="Compute the papers' sentence embeddings.")
@click.option("--force", is_flag=True, help="Recompute every vector, not only the missing ones.")
@click.pass_obj
def reindex_command(settings: Settings, semantic: bool, force: bool) -> None:
    """Compute the semantic vectors an existing store lacks (needs the `semantic` extra)."""
    from bot.semantic import missing

    if not semantic:
        raise click.UsageError("say what to rebuild: --semantic")
    why = missing()
    if why is not None:
        raise click.ClickException(f"semantic matching is unavailable: {why}")
    if settings.semantic == "off":
        raise click.ClickException("semantic matching is off (PAPERBOT_SEMANTIC=off)")
    meaning = load_semantic(settings)
    assert meaning is not None  # the extra is installed and on (checked above)
    with _open_store(settings) as store:
        if force:
            store.papers.clear_vectors()
            # The index holds copies of the vectors just dropped: it is built again below.
            shutil.rmtree(ann.directory(Path(settings.db_path)), ignore_errors=True)
        todo = store.papers.count_without_vectors(meaning.encoder.name)
        done = 0

        def count(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n)

        try:
            with click.progressbar(length=todo, label="Embedding papers", file=sys.stderr) as bar:
                embed_missing(store.papers, meaning, progress=count)
        except KeyboardInterrupt:
            # Every batch is committed as it is done: a second run carries on from here.
            click.echo(f"\nStopped after {done} papers; run it again to carry on.", err=True)
            sys.exit(130)
        click.echo(f"Embedded {done} papers.")
        total = store.papers.count_vectors(meaning.encoder.name)
        if total < ann.ANN_MIN:
            return  # searched exactly: an index would not pay
        with click.progressbar(length=total, label="Indexing vectors", file=sys.stderr) as bar:
            path = build_index(store.papers, meaning.encoder.name, meaning.encoder.dim, bar.update)
        if path is not None:
            click.echo(f"Index of {total} papers' vectors: {path}")


@click.command("backup")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@click.pass_obj
def backup_command(settings: Settings, target: Path, force: bool) -> None:
    """Copy the database to TARGET (a file or a directory) while the bot may be running."""
    try:
        report = backup(Path(settings.db_path), target, datetime.now(UTC), overwrite=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Backed up {report.papers} papers and {report.subscribers} subscribers "
        f"to {report.path} ({report.bytes / 1e6:.1f} MB)."
    )
