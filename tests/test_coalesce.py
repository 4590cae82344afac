"""hpt_core.coalesce: concurrent scoring calls share forward runs, each gets its own rows, and a failure stays with
the call that caused it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hpt_core.coalesce import ScoreCoalescer
from hpt_core.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]


def _slow_length_score(texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
    """A deterministic scorer: one row per text (its length and first character), slow enough for calls to queue."""
    threading.Event().wait(0.02)
    if any(t == "boom" for t in texts):
        raise ValueError("boom is not a text")
    if lengths is not None:
        lengths[:] = [len(t) for t in texts]
    return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_concurrent_calls_are_batched_and_each_gets_its_own_rows() -> None:
    coalescer = ScoreCoalescer(_slow_length_score)
    texts = [[f"text {k}" * (k + 1), f"x{k}"] for k in range(24)]

    def one(pair: list[str]) -> tuple[np.ndarray, list[int]]:
        lengths: list[int] = []
        return coalescer(pair, lengths), lengths

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, texts))
    for pair, (scores, lengths) in zip(texts, results):
        np.testing.assert_array_equal(scores, _slow_length_score(pair))
        assert lengths == [len(t) for t in pair]
    assert coalescer.calls == 24
    assert coalescer.runs < 24  # some calls shared a run


def test_a_failing_call_fails_alone() -> None:
    coalescer = ScoreCoalescer(_slow_length_score)
    texts = ["fine"] * 6 + ["boom"] + ["also fine"] * 6

    def one(text: str) -> object:
        try:
            return coalescer([text])
        except ValueError as e:
            return e

    with ThreadPoolExecutor(13) as pool:
        results = list(pool.map(one, texts))
    assert [isinstance(r, ValueError) for r in results] == [t == "boom" for t in texts]


def test_large_calls_run_on_their_own() -> None:
    coalescer = ScoreCoalescer(_slow_length_score, max_texts=4)
    scores = coalescer([f"t{k}" for k in range(10)])
    assert scores.shape == (10, 2) and coalescer.runs == 0


def test_a_coalescing_predictor_scores_as_a_plain_one() -> None:
    """The real demo model: threads through a coalescing predictor get the plain predictor's scores."""
    plain = Predictor.from_pretrained(ROOT / "checkpoints" / "20ng-hpt", device="cpu")
    shared = Predictor(plain.model, coalesce=True)
    texts = [
        "The shuttle reached orbit after a delayed launch.",
        "Which graphics card renders 3D scenes fastest?",
        "The goalie stopped every shot in the playoff game.",
        "Gun owners argued about the new firearm law.",
    ]
    expected = plain.scores(texts)
    with ThreadPoolExecutor(4) as pool:
        rows = list(pool.map(lambda t: shared.scores([t])[0], texts))
    np.testing.assert_allclose(np.stack(rows), expected, atol=1e-4)
    assert shared.coalescer is not None and shared.coalescer.calls == 4


@pytest.mark.parametrize("coalesce", [False, True])
def test_predict_rejects_an_empty_text_either_way(coalesce: bool) -> None:
    predictor = Predictor.from_pretrained(ROOT / "checkpoints" / "20ng-hpt", device="cpu", coalesce=coalesce)
    with pytest.raises(Exception, match="empty"):
        predictor.predict(["   "])
