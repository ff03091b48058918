"""The vector index of large stores (bot.semantic.ann): built from SQLite, followed by a running
process, never the judge of a score.

The vectors are clustered, like papers' embeddings (papers on one subject sit together), and
a fake encoder maps a topic to one cluster's centre, so these tests need faiss and numpy (the
`semantic` extra) but not the model.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from bot.semantic import Semantic, ann, build_index, pack
from bot.semantic import similarity as similarity_module
from bot.storage import Store
from bot.topics import parse

np = pytest.importorskip("numpy")
pytest.importorskip("faiss")

DIM = 384
CLUSTERS = 30
PER_CLUSTER = 100
MODEL = "fake-model"


class ClusterEncoder:
    """Embeds "cluster N" as the N-th cluster's centre (any other text as a random vector)."""

    name = MODEL
    dim = DIM

    def __init__(self, centres: Any) -> None:
        self.centres = centres

    def encode(self, texts: Any) -> Any:
        rows = []
        for text in texts:
            words = text.split()
            if len(words) == 2 and words[0] == "cluster":
                rows.append(self.centres[int(words[1])])
            else:
                rng = np.random.default_rng(abs(hash(text)) % 2**32)
                rows.append(_unit(rng.standard_normal(DIM)))
        return np.array(rows, dtype=np.float32)


def _unit(vector: Any) -> Any:
    return (vector / np.linalg.norm(vector, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def centres() -> Any:
    return _unit(np.random.default_rng(1).standard_normal((CLUSTERS, DIM)))


def _rows(centres: Any, start: int, count: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    """`count` papers from rowid `start`, spread round the clusters, each with two passages."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        centre = centres[(start + i) % CLUSTERS]
        whole = _unit(centre + rng.standard_normal(DIM) * 0.06)
        passages = [_unit(centre + rng.standard_normal(DIM) * 0.08) for _ in range(2)]
        rows.append((start + i, pack(whole), b"".join(pack(p) for p in passages)))
    return rows


@pytest.fixture
def store(tmp_path: Path, centres: Any, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(ann, "ANN_MIN", 1000)
    monkeypatch.setattr(ann, "REFINE_MIN", 100)
    monkeypatch.setattr(ann, "REFINE", 5)
    opened = Store.open(tmp_path / "papers.db")
    opened.papers.put_vectors(MODEL, _rows(centres, 1, CLUSTERS * PER_CLUSTER, seed=2))
    return opened


def _meaning(centres: Any) -> Semantic:
    return Semantic(ClusterEncoder(centres))


def test_the_index_finds_what_the_exact_scan_finds(store: Store, centres: Any) -> None:
    exact = _meaning(centres)
    expected = {n: exact.nearest(store.papers, parse(f"cluster {n}"), 20) for n in range(5)}
    assert exact.ann is None and len(exact.recent) == CLUSTERS * PER_CLUSTER

    path = build_index(store.papers, MODEL, DIM)
    assert path is not None and path.name == f"{MODEL}.1"
    indexed = _meaning(centres)
    for n, nearest in expected.items():
        assert indexed.nearest(store.papers, parse(f"cluster {n}"), 20) == nearest
    # Asked for many (a subscription matched over the whole store), it finds them all too.
    topic = parse("cluster 6")
    many = indexed.similar(store.papers, topic, keep=PER_CLUSTER)
    assert many == pytest.approx(exact.similar(store.papers, topic, keep=PER_CLUSTER))
    assert ann.candidates_for(10) == 100 and ann.candidates_for(30) == 130  # REFINE 5, MIN 100
    # Nothing is held exactly but what the index lacks: none.
    assert indexed.ann is not None and len(indexed.ann) == CLUSTERS * PER_CLUSTER
    assert len(indexed.recent) == 0
    assert {r for r, _ in expected[3]} <= set(range(3, CLUSTERS * PER_CLUSTER + 1, CLUSTERS))


def test_a_store_too_small_for_an_index_gets_none(tmp_path: Path, centres: Any) -> None:
    small = Store.open(tmp_path / "small.db")
    small.papers.put_vectors(MODEL, _rows(centres, 1, 50, seed=3))
    assert build_index(small.papers, MODEL, DIM) is None
    assert not ann.directory(tmp_path / "small.db").exists()


def test_vectors_written_after_the_index_are_found(store: Store, centres: Any) -> None:
    build_index(store.papers, MODEL, DIM)
    meaning = _meaning(centres)
    topic = parse("cluster 7")
    before = meaning.nearest(store.papers, topic, 5)
    # Written by this process (ingest's embedding)...
    centre = centres[7]
    mine = [(90_001, pack(centre), b"")]
    meaning.save(store.papers, mine)
    assert meaning.nearest(store.papers, topic, 5)[0][0] == 90_001
    # ... and by another one (`paperbot reindex` beside the bot).
    other = Store.open(store.papers.path() or "")
    other.papers.put_vectors(MODEL, [(90_002, pack(_unit(centre + 0.001)), pack(centre))])
    other.close()
    found = [r for r, _ in meaning.nearest(store.papers, topic, 5)]
    assert set(found[:2]) == {90_001, 90_002} and found[2:] == [r for r, _ in before[:3]]


def test_a_vector_gone_or_changed_in_sqlite_is_scored_as_sqlite_says(
    store: Store, centres: Any
) -> None:
    build_index(store.papers, MODEL, DIM)
    meaning = _meaning(centres)
    topic = parse("cluster 4")
    first, second = (r for r, _ in meaning.nearest(store.papers, topic, 2))
    # One paper's vector is dropped (its text changed: a trigger does this, in this process
    # or another) and another is re-embedded as something else; the index's copies of both
    # are as they were.
    with store.conn:
        store.conn.execute("DELETE FROM paper_vectors WHERE paper_rowid = ?", [first])
    other = Store.open(store.papers.path() or "")
    other.papers.put_vectors(MODEL, [(second, pack(centres[9]), b"")])
    other.close()
    now = [r for r, _ in meaning.nearest(store.papers, topic, 10)]
    assert first not in now and second not in now
    assert second in [r for r, _ in meaning.nearest(store.papers, parse("cluster 9"), 3)]


def test_a_newer_index_from_another_process_is_taken_up(
    store: Store, centres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index(store.papers, MODEL, DIM)
    meaning = _meaning(centres)
    meaning.nearest(store.papers, parse("cluster 1"), 3)
    assert meaning.ann is not None and meaning.ann.seq == 1
    store.papers.put_vectors(MODEL, _rows(centres, 50_000, 30, seed=4))
    assert build_index(store.papers, MODEL, DIM) is not None
    monkeypatch.setattr(similarity_module, "INDEX_LOOK_SECONDS", 0.0)
    meaning.nearest(store.papers, parse("cluster 1"), 3)
    assert meaning.ann.seq == 2 and len(meaning.ann) == CLUSTERS * PER_CLUSTER + 30
    # The older index is gone; an up-to-date one is not written again.
    folder = ann.directory(store.papers.path() or Path())
    assert sorted(p.name for p in folder.iterdir()) == [f"{MODEL}.2"]
    assert build_index(store.papers, MODEL, DIM) == folder / f"{MODEL}.2"
    # A dropped vector is news too: the next index is built without it.
    with store.conn:
        store.conn.execute("DELETE FROM paper_vectors WHERE paper_rowid = 1")
    rebuilt = build_index(store.papers, MODEL, DIM)
    assert rebuilt == folder / f"{MODEL}.2" and ann.Ann.load(rebuilt).records([1]) == {}


def test_a_build_cut_short_or_an_index_of_another_database_is_not_used(
    store: Store,
    centres: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    database = store.papers.path() or Path()
    folder = ann.directory(database)
    # A crash while writing leaves only the partial folder.
    (folder / f"{MODEL}.3.partial").mkdir(parents=True)
    (folder / f"{MODEL}.3.partial" / "index.faiss").write_bytes(b"half an index")
    # A backup taken before the index was built, restored after it: the index holds a timeline
    # the database no longer has (later, new papers could reuse its rowids).
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    backup = tmp_path / "backup.db"
    shutil.copyfile(database, backup)
    build_index(store.papers, MODEL, DIM)
    assert [p.name for p in folder.iterdir()] == [f"{MODEL}.1"]
    store.close()
    shutil.copyfile(backup, database)
    restored = Store.open(database)
    restored.papers.put_vectors(MODEL, _rows(centres, 8000, 5, seed=8))  # past the index's seq
    meaning = _meaning(centres)
    monkeypatch.setattr(similarity_module, "INDEX_LOOK_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING):
        nearest = meaning.nearest(restored.papers, parse("cluster 2"), 3)
        assert meaning.nearest(restored.papers, parse("cluster 2"), 3) == nearest
    assert meaning.ann is None and len(nearest) == 3
    assert caplog.text.count("is not this database's") == 1  # said once, not at every look-up
    # `paperbot reindex --semantic` mends it.
    assert build_index(restored.papers, MODEL, DIM) == folder / f"{MODEL}.2"
    assert _meaning(centres).nearest(restored.papers, parse("cluster 2"), 3) == nearest
    restored.close()


def test_doctor_says_how_the_vectors_are_searched(
    tmp_path: Path, centres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.doctor import check_vector_index

    monkeypatch.setattr(ann, "ANN_MIN", 1000)
    model = "all-MiniLM-L6-v2"
    db = tmp_path / "papers.db"
    store = Store.open(db)
    (none,) = check_vector_index(db)
    assert none.text.startswith("no paper embedded yet: the bot embeds new ones")
    store.papers.put_vectors(model, _rows(centres, 1, 500, seed=5))
    assert "500 papers embedded, searched exactly" in check_vector_index(db)[0].text
    store.papers.put_vectors(model, _rows(centres, 501, 1000, seed=6))
    (missing,) = check_vector_index(db)
    assert missing.level == "warn" and "no vector index" in missing.text
    build_index(store.papers, model, DIM)
    (built,) = check_vector_index(db)
    assert built.level == "ok" and built.text.endswith(f"index {model}.2")
    store.papers.put_vectors(model, _rows(centres, 2000, 5, seed=7))
    assert "newer vectors are searched exactly" in check_vector_index(db)[0].text
