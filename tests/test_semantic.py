"""The optional semantic extra: the encoder, stored vectors, fused look-ups, related matches.

Tests that need the model are skipped when the extra is not installed; the rest check that
paperbot works as before without it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from adapters.cli import cli
from bot import semantic
from bot.commands import Handler, parse_command
from bot.config import Settings
from bot.digests import preview
from bot.ingest import embed_pending, run_ingest
from bot.models import Caller
from bot.runtime import StoreRunner
from bot.search import RELATED_MIN_SIMILARITY, matches, search
from bot.semantic import Semantic, VectorIndex, embed_missing
from bot.storage import Store
from bot.topics import parse
from tests.fakes.core import add_paper, add_subscriber

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

needs_model = pytest.mark.skipif(
    semantic.missing() is not None, reason=f"semantic extra: {semantic.missing()}"
)

# Papers about speech recognition that never say "speech" or "recognition", and one that is
# about something else.
SPOKEN = ("2611.00001", "Transcribing spoken audio", "Turning spoken utterances into text.")
VOICE = (
    "2611.00002",
    "Automatic transcription of spoken language",
    "A model that transcribes voice recordings to text.",
)
PROTEIN = (
    "2611.00003",
    "Protein structure prediction with diffusion",
    "A generative model of protein backbones conditioned on sequence.",
)


@pytest.fixture(scope="module")
def encoder() -> semantic.Encoder:
    if semantic.missing() is not None:
        pytest.skip(f"semantic extra: {semantic.missing()}")
    loaded = semantic.load_encoder()
    assert loaded is not None
    return loaded


@pytest.fixture
def meaning(encoder: semantic.Encoder) -> Semantic:
    """The semantic extra, as the composition root passes it to look-ups and digests."""
    return Semantic(encoder)


@pytest.fixture
def store(tmp_path: Path, encoder: semantic.Encoder) -> Iterator[Store]:
    opened = Store.open(tmp_path / "papers.db")
    for i, (paper_id, title, summary) in enumerate((SPOKEN, VOICE, PROTEIN)):
        add_paper(opened, paper_id, title, NOW - timedelta(hours=3 - i), summary=summary)
    yield opened
    opened.close()


@needs_model
def test_encoder_matches_sentence_transformers_on_pytorch(encoder: semantic.Encoder) -> None:
    import numpy as np

    reference = json.loads((FIXTURES / "minilm_reference.json").read_text(encoding="utf-8"))
    ours = encoder.encode(reference["texts"])
    theirs = np.array(reference["embeddings"], dtype=np.float32)
    assert ours.shape == theirs.shape == (8, 384)
    # The same numbers to the fixture's 6 decimals: the same model, not merely a similar one.
    assert float(np.abs(ours - theirs).max()) < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


@needs_model
@pytest.mark.parametrize("tight", [False, True], ids=["one pass", "small passes, safe softmax"])
def test_encoder_keeps_the_vectors_of_sample_paper_texts(
    encoder: semantic.Encoder, monkeypatch: pytest.MonkeyPatch, tight: bool
) -> None:
    import numpy as np

    from bot.semantic import model

    recorded = json.loads((FIXTURES / "minilm_sample.json").read_text(encoding="utf-8"))
    if tight:
        # Texts split over several forward passes, and every softmax through the fallback
        # that subtracts each row's largest score (taken only on overflow otherwise).
        monkeypatch.setattr(model, "BATCH_TOKENS", 300)
        monkeypatch.setattr(model, "SOFTMAX_SUMS", (np.inf, np.inf))
    texts = recorded["texts"][::-1]
    ours = encoder.encode(texts)[::-1]
    theirs = np.array(recorded["embeddings"], dtype=np.float32)
    assert ours.shape == theirs.shape == (10, 384)
    # Passages of 8 to 90 tokens and whole texts cut at 256, some with non-ASCII titles: the
    # vectors recorded from the padded-batch forward pass, to the fixture's 7 decimals.
    assert float(np.abs(ours - theirs).max()) < 1e-5
    assert float((ours * theirs).sum(axis=1).min()) > 1 - 1e-6


@needs_model
def test_packed_vectors_keep_their_cosine(encoder: semantic.Encoder) -> None:
    import numpy as np

    vectors = encoder.encode([" ".join(SPOKEN[1:]), " ".join(PROTEIN[1:])])
    # Read back as look-ups read them: through the index, which keeps the int8 form.
    index = VectorIndex(encoder.dim)
    index.add([(i, semantic.pack(v)) for i, v in enumerate(vectors)])
    restored = np.stack([index.vector(i) for i in range(len(vectors))])
    assert len(semantic.pack(vectors[0])) == 4 + 384
    cosine = (restored * vectors).sum(axis=1) / np.linalg.norm(restored, axis=1)
    assert cosine.min() > 0.999
    assert abs(float(restored[0] @ restored[1]) - float(vectors[0] @ vectors[1])) < 0.01


@needs_model
def test_a_vector_is_recomputed_only_when_its_text_changes(store: Store, meaning: Semantic) -> None:
    model = semantic.MODEL_NAME
    assert store.papers.count_without_vectors(model) == 3
    assert embed_missing(store.papers, meaning) == 3
    assert store.papers.count_without_vectors(model) == 0
    add_paper(store, PROTEIN[0], PROTEIN[1], NOW, summary=PROTEIN[2], upvotes=40)
    assert store.papers.count_without_vectors(model) == 0  # upvotes are not embedded
    add_paper(store, PROTEIN[0], "Protein folding by diffusion", NOW, summary=PROTEIN[2])
    assert store.papers.count_without_vectors(model) == 1


def test_an_abstract_is_cut_into_passages_of_two_sentences() -> None:
    whole, passages = semantic.paper_texts(
        "Title",
        "First sentence is long enough. Second one is long, too! Code is here. "
        "Third sentence carries on? Fourth sentence ends it.",
    )
    assert whole.startswith("Title. First sentence")
    # "Code is here." says nothing a topic is about: dropped.
    assert passages == [
        "First sentence is long enough. Second one is long, too!",
        "Third sentence carries on? Fourth sentence ends it.",
    ]
    assert semantic.paper_texts("Only a title", None) == ("Only a title", [])


def test_papers_embedded_before_passages_were_stored_count_as_missing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "papers.db")
    add_paper(store, *SPOKEN[:2], NOW, summary=SPOKEN[2])
    add_paper(store, *VOICE[:2], NOW, summary=VOICE[2])
    rowids = [int(r[0]) for r in store.conn.execute("SELECT rowid FROM papers ORDER BY rowid")]
    store.papers.put_vectors("m", [(rowids[0], b"v", b"")])
    # What migration m009 leaves for a paper embedded before it: a vector, no passages.
    with store.conn:
        store.conn.execute(
            "INSERT INTO paper_vectors (paper_rowid, model, vec) VALUES (?, 'm', ?)",
            [rowids[1], b"v"],
        )
    assert store.papers.count_without_vectors("m") == 1
    assert [r for r, _, _ in store.papers.without_vectors("m", 10)] == [rowids[1]]
    assert sorted(store.papers.vector_rows("m", rowids)) == [
        (rowids[0], b"v", b""),
        (rowids[1], b"v", None),
    ]
    store.close()


@needs_model
def test_a_paper_with_one_passage_on_the_topic_scores_above_its_whole_text(
    store: Store, meaning: Semantic, encoder: semantic.Encoder
) -> None:
    import numpy as np

    summary = (
        "We study the folding of protein backbones with a generative model of structure. "
        "The model is conditioned on the amino acid sequence and predicts coordinates. "
        "We also release a speech recognition system that transcribes spoken audio to text. "
        "It is trained on thousands of hours of recorded voice. "
        "Experiments on protein benchmarks show accurate structures for long chains."
    )
    add_paper(store, "2611.00004", "Protein structure from sequence", NOW, summary=summary)
    embed_missing(store.papers, meaning)
    rowid = store.conn.execute("SELECT rowid FROM papers WHERE id = '2611.00004'").fetchone()[0]
    topic = parse("speech recognition")
    query = meaning.query_vectors(topic)[0]  # type: ignore[index]
    whole_text, passages = semantic.paper_texts("Protein structure from sequence", summary)
    vectors = encoder.encode([whole_text, *passages])
    closest = float(np.max(vectors[1:] @ query))
    expected = (1 - semantic.PASSAGE_WEIGHT) * float(vectors[0] @ query)
    expected += semantic.PASSAGE_WEIGHT * closest
    similarity = meaning.similar(store.papers, topic, [rowid])[rowid]
    assert similarity == pytest.approx(expected, abs=0.01)
    assert closest > float(vectors[0] @ query) + 0.1


@needs_model
def test_more_like_this_finds_papers_close_in_meaning_and_leaves_out_muted_ones(
    store: Store, meaning: Semantic
) -> None:
    me = Caller("console", "me")
    handler = Handler(store, meaning)
    # Before its vector is computed a paper gets a look-up of its title's words.
    by_words = handler.more_like(me, SPOKEN[0], NOW)
    assert [c.paper_id for c in by_words.cards] == [VOICE[0]]
    assert "related" not in by_words.cards[0].why
    assert "nothing else like" in handler.more_like(me, PROTEIN[0], NOW).text
    embed_missing(store.papers, meaning)
    reply = handler.more_like(me, SPOKEN[0], NOW)
    assert [c.paper_id for c in reply.cards][:1] == [VOICE[0]]
    assert SPOKEN[0] not in [c.paper_id for c in reply.cards]
    assert reply.cards[0].why.startswith('related: close in meaning to "Transcribing spoken audio"')
    handler.handle(me, parse_command("subscribe speech"), NOW)
    subscriber = handler.store.subscribers.find("console", "user", "me")
    assert subscriber is not None
    handler.store.subscribers.mute(subscriber.id, VOICE[0], NOW)
    assert VOICE[0] not in [c.paper_id for c in handler.more_like(me, SPOKEN[0], NOW).cards]
    assert handler.more_like(me, "2611.99999", NOW).error


@needs_model
def test_a_lookup_finds_papers_by_meaning_and_says_so(store: Store, meaning: Semantic) -> None:
    assert search(store, "speech recognition", semantic=meaning) == []  # no paper has the words
    embed_missing(store.papers, meaning)
    hits = search(store, "speech recognition", limit=3, semantic=meaning)
    assert {h.paper.id for h in hits[:2]} == {SPOKEN[0], VOICE[0]}
    assert hits[0].why().startswith('related: close in meaning to "speech recognition" (0.')
    assert hits[-1].paper.id == PROTEIN[0] and hits[-1].score < hits[1].score


@needs_model
def test_word_matches_still_rank_and_explain_as_before(store: Store, meaning: Semantic) -> None:
    embed_missing(store.papers, meaning)
    hits = search(store, "protein diffusion", limit=3, semantic=meaning)
    assert hits[0].paper.id == PROTEIN[0]
    assert '"protein" in title' in hits[0].why()


@needs_model
def test_exclusions_and_filters_hold_for_papers_found_by_meaning(
    store: Store, meaning: Semantic
) -> None:
    embed_missing(store.papers, meaning)
    ids = {h.paper.id for h in search(store, "speech recognition -voice", semantic=meaning)}
    assert VOICE[0] not in ids and SPOKEN[0] in ids
    assert search(store, "speech recognition cat:q-bio", semantic=meaning) == []
    # title: asks for the word itself.
    assert search(store, "title:speech", semantic=meaning) == []


@needs_model
def test_a_subscription_adds_close_papers_as_related_and_leaves_the_rest(
    store: Store, meaning: Semantic
) -> None:
    embed_missing(store.papers, meaning)
    hits = matches(store, "speech recognition", semantic=meaning)
    assert {h.paper.id for h in hits} == {SPOKEN[0], VOICE[0]}
    for hit in hits:
        assert hit.reasons[0].similarity is not None
        assert hit.reasons[0].similarity >= RELATED_MIN_SIMILARITY
    assert matches(store, "protein", semantic=meaning) and all(
        h.reasons[0].similarity is None for h in matches(store, "protein", semantic=meaning)
    )


@needs_model
def test_a_digest_carries_related_papers_marked_related(store: Store, meaning: Semantic) -> None:
    embed_missing(store.papers, meaning)
    subscriber = add_subscriber(store, "ada", ["speech recognition"], NOW - timedelta(days=2))
    digest = preview(store, subscriber, NOW + timedelta(hours=2), meaning)
    cards = [card for section in digest.sections for card in section.cards]
    assert {card.paper_id for card in cards} == {SPOKEN[0], VOICE[0]}
    assert all(card.why.startswith("related: close in meaning") for card in cards)


@needs_model
def test_vectors_another_process_writes_are_seen(
    store: Store, meaning: Semantic, tmp_path: Path
) -> None:
    assert search(store, "speech recognition", semantic=meaning) == []  # loads the (empty) index
    other = Store.open(tmp_path / "papers.db")
    embed_missing(other.papers, Semantic(meaning.encoder))
    other.close()
    assert search(store, "speech recognition", semantic=meaning)[0].paper.id in {
        SPOKEN[0],
        VOICE[0],
    }


@needs_model
async def test_ingest_computes_vectors_off_the_store_thread(
    tmp_path: Path, encoder: semantic.Encoder
) -> None:
    payload = (FIXTURES / "hf_daily_papers_latest_limit30_2026-06-12.json").read_bytes()

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("p", "0"))
        return httpx.Response(200, content=payload if page == 0 else b"[]")

    store = Store.open(tmp_path / "papers.db")
    meaning = Semantic(encoder)
    runner = StoreRunner(store)
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    try:
        report = await run_ingest(
            Settings(),
            runner,
            NOW,
            "hf",
            since=NOW.date(),
            until=NOW.date(),
            client=client,
            semantic=meaning,
        )
        assert report.sources["hf"].stats.new > 0
        assert report.embedded == report.sources["hf"].stats.new
        left = await runner.call(
            lambda store: store.papers.count_without_vectors(semantic.MODEL_NAME)
        )
        assert left == 0
        assert await embed_pending(runner, meaning) == 0
    finally:
        await client.aclose()
        await runner.close()


@needs_model
def test_reindex_command_embeds_a_store_and_search_json_shows_similarity(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    store = Store.open(db)
    for i, (paper_id, title, summary) in enumerate((SPOKEN, VOICE, PROTEIN)):
        add_paper(store, paper_id, title, NOW - timedelta(hours=i), summary=summary)
    store.close()
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic"])
    assert result.exit_code == 0, result.output
    assert "Embedded 3 papers." in result.output
    again = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic"])
    assert "Embedded 0 papers." in again.output
    forced = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic", "--force"])
    assert "Embedded 3 papers." in forced.output
    found = runner.invoke(cli, ["--db", str(db), "search", "--json", "speech", "recognition"])
    rows: list[dict[str, Any]] = json.loads(found.output)
    assert rows[0]["matched"][0]["similarity"] >= RELATED_MIN_SIMILARITY
    off = runner.invoke(
        cli,
        ["--db", str(db), "search", "--json", "speech recognition"],
        env={"PAPERBOT_SEMANTIC": "off"},
    )
    assert json.loads(off.output) == []


@needs_model
def test_reindex_stopped_midway_carries_on_then_indexes_a_large_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from bot.semantic import ann
    from bot.semantic import similarity as similarity_module

    db = tmp_path / "cli.db"
    store = Store.open(db)
    for i, (paper_id, title, summary) in enumerate((SPOKEN, VOICE, PROTEIN) * 2):
        add_paper(store, f"{paper_id}{i}", title, NOW - timedelta(hours=i), summary=summary)
    # Vectors of no paper stand in for a large store's, so that it gets an index.
    monkeypatch.setattr(ann, "ANN_MIN", 1000)
    rng = np.random.default_rng(3)
    decoys = rng.standard_normal((1200, 384)).astype(np.float32)
    decoys /= np.linalg.norm(decoys, axis=1, keepdims=True)
    store.papers.put_vectors(
        "all-MiniLM-L6-v2", [(10_000 + i, semantic.pack(v), b"") for i, v in enumerate(decoys)]
    )
    store.close()
    monkeypatch.setattr(similarity_module, "EMBED_BATCH", 2)
    calls = 0
    embed = Semantic.embed

    def interrupted(self: Semantic, papers: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second batch
        return embed(self, papers)

    monkeypatch.setattr(Semantic, "embed", interrupted)
    runner = CliRunner()
    stopped = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic"])
    assert stopped.exit_code == 130, stopped.output
    assert "Stopped after 2 papers; run it again to carry on." in stopped.output
    assert "Traceback" not in stopped.output
    assert not ann.directory(db).exists()
    monkeypatch.setattr(Semantic, "embed", embed)
    resumed = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic"])
    assert resumed.exit_code == 0, resumed.output
    assert "Embedded 4 papers." in resumed.output and "Indexing vectors" in resumed.output
    assert "Index of 1206 papers' vectors" in resumed.output
    assert [p.name for p in ann.directory(db).iterdir()] == ["all-MiniLM-L6-v2.4"]
    # --force drops every vector (the stand-ins too) and the index's copies of them; the six
    # papers left are too few for an index.
    forced = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic", "--force"])
    assert "Embedded 6 papers." in forced.output and "Index of" not in forced.output
    assert not ann.directory(db).exists()
    found = runner.invoke(cli, ["--db", str(db), "search", "--json", "speech", "recognition"])
    rows: list[dict[str, Any]] = json.loads(found.stdout)
    assert rows and rows[0]["matched"][0]["similarity"] >= RELATED_MIN_SIMILARITY


# -- without the extra ----------------------------------------------------------------------


EXTRA_MODULES = ("numpy", "tokenizers", "safetensors", "threadpoolctl")
NOTHING_LISTENS = "http://127.0.0.1:9"  # a closed local port: the sources are unreachable


@pytest.fixture
def no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    # Every module of the extra, so what the test sees does not depend on what is installed.
    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in EXTRA_MODULES else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("no_extra")
def test_without_the_extra_paperbot_matches_words_and_says_how_to_add_it(tmp_path: Path) -> None:
    assert semantic.load_encoder() is None
    assert "pip install 'paperbot[semantic]'" in (semantic.missing() or "")
    db = tmp_path / "plain.db"
    store = Store.open(db)
    add_paper(store, PROTEIN[0], PROTEIN[1], NOW, summary=PROTEIN[2])
    store.close()
    runner = CliRunner()
    found = runner.invoke(cli, ["--db", str(db), "search", "--json", "protein"])
    assert [row["id"] for row in json.loads(found.output)] == [PROTEIN[0]]
    refused = runner.invoke(cli, ["--db", str(db), "reindex", "--semantic"])
    assert refused.exit_code != 0
    assert "semantic matching is unavailable" in refused.output
    offline = {
        "PAPERBOT_HF_API_URL": f"{NOTHING_LISTENS}/api",
        "PAPERBOT_ARXIV_API_URL": f"{NOTHING_LISTENS}/api/query",
        "SLACK_API_URL": f"{NOTHING_LISTENS}/api/",
    }
    doctor = runner.invoke(cli, ["--db", str(db), "doctor"], env=offline)
    missing = "not installed: numpy, tokenizers, safetensors, threadpoolctl"
    assert f"semantic  words only; {missing}" in doctor.output
    assert "unreachable (ConnectError)" in doctor.output


def test_reindex_needs_to_be_told_what_to_rebuild(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "x.db"), "reindex"])
    assert result.exit_code == 2 and "--semantic" in result.output
