"""Search quality on the judged query sets must stay above the issue's bar."""

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent / "eval" / "evaluate.py"
_spec = importlib.util.spec_from_file_location("paperbot_evaluate", _PATH)
assert _spec and _spec.loader
evaluate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = evaluate  # dataclasses look their module up there
_spec.loader.exec_module(evaluate)


@pytest.fixture(scope="module")
def eval_store():  # type: ignore[no-untyped-def]
    store = evaluate.seeded_store()
    yield store
    store.close()


@pytest.mark.parametrize("name", ["devset", "holdout"])
def test_quality_bar(eval_store, name: str) -> None:  # type: ignore[no-untyped-def]
    results = evaluate.evaluate(eval_store, evaluate.load(name))
    summary = evaluate.summary(results)
    assert summary["ndcg@10"] >= 0.85, summary
    assert summary["match_f1"] >= 0.75, summary
    assert summary["worst_ndcg"] >= 0.3, [(r.query, r.ndcg) for r in results]
