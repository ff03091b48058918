from bot.search import matches, search
from bot.storage import Store


def titles(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.paper.title for h in hits]


def test_kv_cache_papers_come_first(seeded_store: Store) -> None:
    hits = search(seeded_store, "kv-cache", limit=5)
    assert len(hits) == 5
    for hit in hits[:4]:
        assert "KV Cache" in hit.paper.title
        assert '"KV cache" in title' in hit.why()


def test_acronym_finds_expansion_and_says_so(seeded_store: Store) -> None:
    hits = search(seeded_store, "MoE", limit=10)
    assert all("mixture" in h.paper.title.lower() or "moe" in h.paper.title.lower() for h in hits)
    spelled = [h for h in hits if "mixture" in h.paper.title.lower()]
    assert spelled and "(for moe)" in spelled[0].why()


def test_title_beats_abstract_and_phrase_beats_scattered(seeded_store: Store) -> None:
    hits = search(seeded_store, '"information bottleneck"', limit=10)
    assert hits[0].reasons[0].field == "title"
    in_title = [h.score for h in hits if h.reasons[0].field == "title"]
    in_abstract = [h.score for h in hits if h.reasons[0].field == "abstract"]
    assert min(in_title) > max(in_abstract)


def test_exclusion_removes_papers(seeded_store: Store) -> None:
    plain = {h.paper.id for h in matches(seeded_store, "diffusion")}
    minus = {h.paper.id for h in matches(seeded_store, "diffusion -quantization")}
    assert minus < plain
    assert not any(
        "quantiz" in h.paper.title.lower() for h in matches(seeded_store, "diffusion -quantization")
    )


def test_british_spelling_finds_the_same_papers(seeded_store: Store) -> None:
    assert {h.paper.id for h in matches(seeded_store, "quantisation")} == {
        h.paper.id for h in matches(seeded_store, "quantization")
    }


def test_match_is_stricter_than_search(seeded_store: Store) -> None:
    found = {h.paper.id for h in matches(seeded_store, "kv cache")}
    shown = {h.paper.id for h in search(seeded_store, "kv cache", limit=50)}
    assert found < shown


def test_nothing_matches_gives_empty_list(seeded_store: Store) -> None:
    assert search(seeded_store, "zyxwvut") == []
    assert matches(seeded_store, "zyxwvut") == []
