import json
from pathlib import Path

from bot.importer import import_files
from bot.storage import Store
from tests.conftest import FIXTURES, NOW, SEED


def test_seed_corpus_imports_as_it_is_and_idempotently(store: Store) -> None:
    first = import_files(store, [SEED], NOW)
    assert (first.stats.new, len(first.problems)) == (315, 0)
    again = import_files(store, [SEED], NOW)
    assert (again.stats.new, again.stats.updated, again.stats.unchanged) == (0, 0, 315)
    assert store.papers.count() == 315


def test_hf_daily_papers_response(store: Store) -> None:
    path = FIXTURES / "hf_daily_papers_latest_limit30_2026-06-12.json"
    report = import_files(store, [path], NOW)
    assert report.stats.new == 30 and not report.problems
    paper = store.papers.get("2606.00467")
    assert paper is not None
    assert paper.authors[:2] == ("Etienne Casanova", "Rafal Kocielnik")
    assert paper.ai_summary and paper.ai_keywords
    assert paper.hf_url == "https://huggingface.co/papers/2606.00467"
    assert paper.sources == ("hf",)


def test_bad_lines_are_reported_with_numbers_and_the_rest_imports(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": "2401.00001v3", "title": "Good one", "summary": "x", "upvotes": "7"}),
        "{not json",
        json.dumps({"id": "a", "summary": "no title"}),
        "",
        json.dumps({"id": "b", "title": "Bad date", "published": "yesterday"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"title": "No id"}),
        json.dumps({"id": "c", "title": "Bad upvotes", "upvotes": "many"}),
        json.dumps({"id": "d", "title": "Good two", "authors": "A. One, B. Two"}),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    report = import_files(store, [path], NOW)
    assert report.stats.new == 2
    assert [p.where for p in report.problems] == [
        "line 2",
        "line 3",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
    ]
    good = store.papers.get("2401.00001")  # the version suffix is dropped
    assert good is not None and good.upvotes == 7
    assert good.abs_url == "https://arxiv.org/abs/2401.00001"
    two = store.papers.get("d")
    assert two is not None and two.authors == ("A. One", "B. Two")


def test_unreadable_and_broken_files(store: Store, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"paper": ', encoding="utf-8")
    report = import_files(store, [tmp_path / "missing.jsonl", broken], NOW)
    assert len(report.problems) == 2
    assert store.papers.count() == 0
