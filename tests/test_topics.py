import contextlib
import re
import sqlite3
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import InvalidQuery
from bot.search import matches, search
from bot.storage import Store
from bot.topics import analyze, concept_hit, fts, parse, stems, words

HOSTILE = [
    "kv-cache",
    "C++",
    '"',
    "NOT",
    "AND",
    "OR",
    "title:x",
    "''; DROP TABLE papers; --",
    "",
    "   ",
    "\U0001f600" * 2500,  # 10 kB of emoji
    "\x00\x01\x1b[31m kv \x7f",
    "NEAR(a b)",
    "a* OR ^b",
    "{title}: x",
    "author:",
    'author:"',
    "cat:'; --",
    "-",
    "--",
    '-"',
    "\u202eevil\u202c",
    "x" * 301,
    "(((((",
    "col:val",
    "kv:cache",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_gives_results_or_one_clear_error(seeded_store: Store, text: str) -> None:
    try:
        hits = search(seeded_store, text)
        found = matches(seeded_store, text)
    except InvalidQuery as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(hits, list) and isinstance(found, list)


def test_clear_messages() -> None:
    with pytest.raises(InvalidQuery, match="nothing to search"):
        parse('"')
    with pytest.raises(InvalidQuery, match="under 300"):
        parse("x" * 301)
    with pytest.raises(InvalidQuery, match="at most"):
        parse(" ".join(f"word{i}" for i in range(20)))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=120))
def test_any_text_never_raises_anything_but_invalid_query(seeded_store: Store, text: str) -> None:
    with contextlib.suppress(InvalidQuery):
        search(seeded_store, text, limit=3)


OPERATORS = st.sampled_from(
    [
        '"',
        "-",
        "NOT ",
        " OR ",
        " AND ",
        "author:",
        "cat:",
        "title:",
        "(",
        ")",
        "*",
        "^",
        ":",
        "NEAR",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(OPERATORS, st.sampled_from(["kv", "cache", "moe", "x", "cs.LG"])), max_size=12
    )
)
def test_operator_soup_never_reaches_fts_as_syntax(seeded_store: Store, parts: list[str]) -> None:
    text = "".join(parts)
    try:
        topic = parse(text)
    except InvalidQuery:
        return
    for group in topic.groups:
        if group.concepts:
            for expr in (fts.match_all(topic, group), fts.match_any(topic, group)):
                try:
                    seeded_store.papers.fts_newest(expr, limit=1)
                except sqlite3.Error as exc:  # pragma: no cover - the assertion below explains
                    pytest.fail(f"{text!r} compiled to invalid FTS5 {expr!r}: {exc}")


def concept_labels(text: str) -> list[str]:
    return [c.label for g in parse(text).groups for c in g.concepts]


def test_phrases_hyphens_and_lexicon_terms_become_single_concepts() -> None:
    assert concept_labels("kv-cache") == ["kv cache"]
    assert concept_labels("KV caching") == ["kv caching"]
    assert concept_labels("mixture of experts") == ["mixture of experts"]
    assert concept_labels('"information bottleneck"') == ["information bottleneck"]
    assert concept_labels("efficient inference on mobile devices") == [
        "efficient",
        "inference",
        "mobile devices",
    ]


def test_or_exclusion_and_filters() -> None:
    topic = parse('pruning OR sparsity -vision NOT "object detection" author:"Song Han" cat:cs.LG')
    assert [[c.label for c in g.concepts] for g in topic.groups] == [["pruning"], ["sparsity"]]
    assert [c.label for c in topic.exclude] == ["vision", "object detection"]
    assert topic.authors == (("song", "han"),)
    assert topic.categories == ("cs.lg",)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("MoE", "Sparse mixture-of-experts layers"),
        ("mixture of experts", "we scale MoEs to 1T parameters"),
        ("PTQ", "post-training quantisation of diffusion models"),
        ("quantisation", "Quantized networks"),
        ("quantization", "a study of quantisation"),
        ("PEFT", "parameter-efficient fine-tuning for LLMs"),
        ("LoRA", "low-rank adaptation"),
        ("kv-cache", "compressing the key-value cache"),
        ("key-value caching", "KV cache eviction"),
        ("SSM", "state space models such as S4"),
        ("TTS", "text-to-speech synthesis"),
        ("ASR", "automatic speech recognition"),
        ("NAS", "neural architecture search"),
        ("GNN", "graph neural networks"),
        ("RAG", "retrieval-augmented generation"),
        ("RLHF", "reinforcement learning from human feedback"),
        ("ViT", "vision transformers"),
        ("LLM", "large language models"),
        ("VLM", "vision-language models"),
        ("NeRF", "neural radiance fields"),
        ("QAT", "quantization-aware training"),
        ("modelling", "language modeling"),
        ("behaviour", "agent behavior"),
    ],
)
def test_lexicon_and_spelling_match_both_ways(query: str, text: str) -> None:
    paper = analyze(title=text, abstract="")
    concept = parse(query).groups[0].concepts[0]
    hit = concept_hit(concept, paper)
    assert hit.score > 0 and hit.reason is not None and hit.reason.field == "title"


def test_narrower_terms_match_as_related() -> None:
    concept = parse("PEFT").groups[0].concepts[0]
    hit = concept_hit(concept, analyze(title="LoRA for everyone", abstract=""))
    assert hit.reason is not None and hit.reason.related
    direct = concept_hit(concept, analyze(title="Parameter-efficient tuning", abstract=""))
    assert direct.score > hit.score


def _words_reference(text: str) -> list[str]:
    # The character-by-character folding the fast path in `bot.topics` must agree with.
    decomposed = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.findall(r"[^\W_]+", folded)


@given(st.text())
@settings(max_examples=300)
def test_words_fold_accents_as_before(text: str) -> None:
    assert words(text) == _words_reference(text)


def test_words_fold_accents() -> None:
    assert words("Café naïve Ångström ﬁne") == ["cafe", "naive", "angstrom", "fine"]
    assert words("Plain ASCII, kv-cache") == _words_reference("Plain ASCII, kv-cache")


def test_stems_fold_plurals_and_spelling() -> None:
    assert stems("Quantisation quantized") == stems("quantization quantize")
    assert stems("experts") == stems("expert")
