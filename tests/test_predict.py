"""Tests of hpt_core.predict: the consistency rules on hand-set scores (spec §8.8) and ``Predictor`` on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.model import HPTConfig
from hpt_core.predict import RULES, Prediction, Predictor, apply_rule, best_path

# Hand-set scores on the tiny tree (every other label scores -1):
#   Science +2 > Physics -0.5 > Quantum optics +3   (a child above the threshold under a parent below it)
#   Science    > Biology +1   > Genetics +0.5       (a consistent path)
#   Science    > Chemistry 0.0                      (exactly at the threshold: not predicted, s > 0 is strict)
#   Arts -1    > Music -0.2   > Jazz +0.2           (an orphan whose whole ancestry is below the threshold)
HAND_SCORES = {
    ("Science",): 2.0,
    ("Science", "Physics"): -0.5,
    ("Science", "Physics", "Quantum optics"): 3.0,
    ("Science", "Biology"): 1.0,
    ("Science", "Biology", "Genetics"): 0.5,
    ("Science", "Chemistry"): 0.0,
    ("Arts", "Music"): -0.2,
    ("Arts", "Music", "Jazz"): 0.2,
}


@pytest.fixture(scope="module")
def tree(tiny_tree_paths) -> LabelHierarchy:
    """``tiny_tree`` built once for the module (hypothesis tests cannot use function-scoped fixtures)."""
    return LabelHierarchy.from_paths(tiny_tree_paths)


def scores_of(tree: LabelHierarchy, values: dict[tuple[str, ...], float], default: float = -1.0) -> np.ndarray:
    scores = np.full(tree.num_labels, default, dtype=np.float32)
    for path, value in values.items():
        scores[tree.index(list(path))] = value
    return scores


def ids(tree: LabelHierarchy, *paths: tuple[str, ...]) -> list[int]:
    return sorted(tree.index(list(p)) for p in paths)


# ------------------------------------------------------------------------------------------------ apply_rule (8.8)
def test_every_listed_rule_sits_between_the_orphan_free_set_and_its_closure(tree):
    """Each rule in RULES is a real rule: it contains every consistent label above the threshold (drop-orphans)
    and adds nothing outside the ancestors of those labels (add-ancestors)."""
    scores = scores_of(tree, HAND_SCORES)
    low = set(apply_rule(scores, tree, "drop-orphans"))
    high = set(apply_rule(scores, tree, "add-ancestors"))
    assert low < high  # the hand scores have an orphan, so the two differ
    for rule in RULES:
        chosen = set(apply_rule(scores, tree, rule))
        assert low <= chosen <= high, rule


def test_paper_rule_is_exactly_the_positive_scores(tree):
    chosen = apply_rule(scores_of(tree, HAND_SCORES), tree, "paper")
    assert chosen == ids(
        tree,
        ("Science",),
        ("Science", "Physics", "Quantum optics"),
        ("Science", "Biology"),
        ("Science", "Biology", "Genetics"),
        ("Arts", "Music", "Jazz"),
    )
    assert not tree.is_consistent(chosen)


def test_paper_rule_threshold(tree):
    scores = scores_of(tree, HAND_SCORES)
    assert apply_rule(scores, tree, "paper", threshold=0.6) == ids(
        tree, ("Science",), ("Science", "Physics", "Quantum optics"), ("Science", "Biology")
    )
    assert apply_rule(scores, tree, "paper", threshold=-0.3) == ids(
        tree,
        ("Science",),
        ("Science", "Physics", "Quantum optics"),
        ("Science", "Biology"),
        ("Science", "Biology", "Genetics"),
        ("Science", "Chemistry"),
        ("Arts", "Music"),
        ("Arts", "Music", "Jazz"),
    )


def test_top_down_drops_children_of_unpredicted_parents(tree):
    chosen = apply_rule(scores_of(tree, HAND_SCORES), tree, "top-down")
    # Quantum optics (+3, the best score) goes: its parent Physics is below the threshold. Jazz goes too.
    assert chosen == ids(tree, ("Science",), ("Science", "Biology"), ("Science", "Biology", "Genetics"))
    assert tree.is_consistent(chosen)


def test_top_down_at_least_one_keeps_the_best_top_label(tree):
    low = {("Science",): -0.3, ("Arts",): -0.1, ("Arts", "Music"): 0.4, ("Arts", "Painting"): -0.2}
    scores = scores_of(tree, low)
    assert apply_rule(scores, tree, "top-down") == []
    # The best top-level label is kept, and the descent continues into its children above the threshold.
    assert apply_rule(scores, tree, "top-down", at_least_one=True) == ids(tree, ("Arts",), ("Arts", "Music"))
    # Nothing changes when a top-level label already passes.
    hand = scores_of(tree, HAND_SCORES)
    assert apply_rule(hand, tree, "top-down", at_least_one=True) == apply_rule(hand, tree, "top-down")


def test_drop_orphans(tree):
    chosen = apply_rule(scores_of(tree, HAND_SCORES), tree, "drop-orphans")
    assert chosen == ids(tree, ("Science",), ("Science", "Biology"), ("Science", "Biology", "Genetics"))
    # A grandchild whose parent passes but whose grandparent does not is an orphan too.
    deep = scores_of(tree, {("Arts", "Music"): 1.0, ("Arts", "Music", "Jazz"): 1.0})
    assert apply_rule(deep, tree, "drop-orphans") == []


def test_add_ancestors(tree):
    chosen = apply_rule(scores_of(tree, HAND_SCORES), tree, "add-ancestors")
    assert chosen == ids(
        tree,
        ("Science",),
        ("Science", "Physics"),
        ("Science", "Physics", "Quantum optics"),
        ("Science", "Biology"),
        ("Science", "Biology", "Genetics"),
        ("Arts",),
        ("Arts", "Music"),
        ("Arts", "Music", "Jazz"),
    )
    assert tree.is_consistent(chosen)


def test_unknown_rule(tree):
    with pytest.raises(ConfigError, match="'bottom-up'.*paper, top-down, drop-orphans, add-ancestors"):
        apply_rule(scores_of(tree, HAND_SCORES), tree, "bottom-up")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=13, max_size=13),
    threshold=st.sampled_from([0.0, -0.5, 1.0]),
)
def test_rules_relate_as_documented(tree, values, threshold):
    scores = np.asarray(values, dtype=np.float32)
    paper = apply_rule(scores, tree, "paper", threshold)
    top_down = apply_rule(scores, tree, "top-down", threshold)
    dropped = apply_rule(scores, tree, "drop-orphans", threshold)
    added = apply_rule(scores, tree, "add-ancestors", threshold)
    assert paper == sorted(np.flatnonzero(scores > threshold).tolist())
    for chosen in (top_down, dropped, added):
        assert chosen == sorted(set(chosen))
        assert tree.is_consistent(chosen)
    assert set(dropped) <= set(paper) <= set(added)
    assert set(top_down) <= set(paper)
    assert top_down == dropped  # both keep exactly the labels whose whole ancestry passes
    assert added == tree.closure(paper)


# ------------------------------------------------------------------------------------------------ Predictor
class FixedScores(Predictor):
    """A predictor whose model returns hand-set scores, to check how predictions are assembled."""

    def __init__(self, model, fixed: np.ndarray) -> None:
        super().__init__(model)
        self.fixed = fixed

    def scores(self, texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
        if lengths is not None:
            lengths[:] = [len(text.split()) for text in texts]
        return np.tile(self.fixed, (len(texts), 1))


@pytest.fixture
def model(make_model, tiny_tree):
    return make_model(HPTConfig(max_length=48), tiny_tree)


@pytest.fixture
def predictor(model) -> Predictor:
    return Predictor(model, batch_size=3)


def test_prediction_assembly_paper_rule(model, tiny_tree):
    predictor = FixedScores(model, scores_of(tiny_tree, HAND_SCORES))
    (prediction,) = predictor.predict("chemistry and jazz")
    assert isinstance(prediction, Prediction) and prediction.text == "chemistry and jazz"
    # One path per predicted label without a predicted child, root first, best score first.
    assert prediction.paths == [
        ["Science", "Physics", "Quantum optics"],
        ["Science", "Biology", "Genetics"],
        ["Arts", "Music", "Jazz"],
    ]
    assert [(s.label, s.depth, s.score) for s in prediction.labels] == [
        ("Science", 0, 2.0),
        ("Biology", 1, 1.0),
        ("Quantum optics", 2, 3.0),
        ("Genetics", 2, 0.5),
        ("Jazz", 2, pytest.approx(0.2)),
    ]
    assert all(s.predicted and s.path[-1] == s.label for s in prediction.labels)
    assert prediction.consistent is False
    assert prediction.truncated is False and prediction.scores == []


def test_prediction_assembly_top_down_and_all_scores(model, tiny_tree):
    predictor = FixedScores(model, scores_of(tiny_tree, HAND_SCORES))
    (prediction,) = predictor.predict(["a text"], rule="top-down", all_scores=True)
    assert prediction.paths == [["Science", "Biology", "Genetics"]]
    assert prediction.consistent is True
    assert len(prediction.scores) == tiny_tree.num_labels
    assert [s.score for s in prediction.scores] == sorted((s.score for s in prediction.scores), reverse=True)
    predicted = {s.label for s in prediction.scores if s.predicted}
    assert predicted == {"Science", "Biology", "Genetics"}  # Quantum optics scores +3 but is dropped
    for s in prediction.scores:
        assert s.probability == pytest.approx(1 / (1 + np.exp(-s.score)))


def test_prediction_to_dict(model, tiny_tree):
    (prediction,) = FixedScores(model, scores_of(tiny_tree, HAND_SCORES)).predict("text")
    data = prediction.to_dict()
    assert set(data) == {"paths", "labels", "consistent"}  # "truncated" only when it happened
    assert data["labels"][0] == {"label": "Science", "path": ["Science"], "depth": 0, "score": 2.0}
    assert data["paths"][0] == ["Science", "Physics", "Quantum optics"]
    assert data["consistent"] is False


def test_best_path_is_chosen_top_down_not_by_the_best_leaf(model, tiny_tree):
    scores = scores_of(tiny_tree, HAND_SCORES)
    # Science (2.0) beats Arts; under it Biology (1.0) beats Physics (-0.5), though Quantum optics scores 3.0
    assert [tiny_tree.path(i) for i in best_path(scores, tiny_tree)][-1] == ["Science", "Biology", "Genetics"]


def test_best_path_when_nothing_passes_the_threshold(model, tiny_tree):
    predictor = FixedScores(model, scores_of(tiny_tree, HAND_SCORES))
    (nothing,) = predictor.predict("text", threshold=5.0)
    assert nothing.paths == [] and nothing.below_threshold is False
    (guess,) = predictor.predict("text", threshold=5.0, best=True)
    assert guess.paths == [["Science", "Biology", "Genetics"]] and guess.below_threshold is True
    assert [s.label for s in guess.labels] == ["Science", "Biology", "Genetics"]
    assert guess.to_dict()["below_threshold"] is True and guess.consistent
    (passed,) = predictor.predict("text", best=True)  # labels pass: best changes nothing
    assert passed.paths == predictor.predict("text")[0].paths and not passed.below_threshold


def test_predictor_on_a_tiny_model(predictor, model, tiny_tree, tiny_docs):
    texts = [text for text, _ in tiny_docs]
    assert not model.training  # Predictor puts the model in eval mode
    raw = predictor.scores(texts)
    assert raw.shape == (len(texts), tiny_tree.num_labels)
    threshold = float(np.median(raw))  # about half the labels pass: a mix of paths, orphans and parents
    predictions = predictor.predict(texts, threshold=threshold)
    assert [p.text for p in predictions] == texts
    for prediction, row in zip(predictions, raw):
        chosen = sorted(np.flatnonzero(row > threshold).tolist())
        assert sorted(tiny_tree.index(s.path) for s in prediction.labels) == chosen
        for s in prediction.labels:
            label = tiny_tree.index(s.path)
            assert s.depth == tiny_tree.depth_of[label] == len(s.path) - 1
            assert s.score == pytest.approx(float(row[label]))
            assert s.label == tiny_tree.name(label)
        assert [(s.depth, -s.score) for s in prediction.labels] == sorted(
            (s.depth, -s.score) for s in prediction.labels
        )
        for path in prediction.paths:
            assert path == tiny_tree.path(tiny_tree.index(path))  # a root-first list of names
            assert path[0] in {"Science", "Arts"}
        ends = [i for i in chosen if not set(tiny_tree.children(i)) & set(chosen)]
        assert sorted(tiny_tree.index(p) for p in prediction.paths) == ends
        assert prediction.consistent == tiny_tree.is_consistent(chosen)


def test_single_string_is_accepted(predictor):
    single = predictor.predict("jazz music is about rhythm")
    assert isinstance(single, list) and len(single) == 1
    assert single[0].text == "jazz music is about rhythm"


def test_batch_equals_one_by_one(predictor, tiny_docs):
    texts = [text for text, _ in tiny_docs]  # 3 to 16 words: batches are padded differently from single texts
    batched = predictor.predict(texts, all_scores=True)
    for text, together in zip(texts, batched):
        (alone,) = predictor.predict(text, all_scores=True)
        a = {s.label: s.score for s in together.scores}
        b = {s.label: s.score for s in alone.scores}
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], atol=1e-5, rtol=0)
        assert together.paths == alone.paths


def test_truncated_flag(predictor, model, tiny_vocab):
    words = [w for w in tiny_vocab if w.isalpha()]
    budget = model.template.text_budget(model.config.max_length)
    long_text = " ".join(words[k % len(words)] for k in range(3 * budget))
    exact = " ".join(words[k % len(words)] for k in range(budget))
    short, at_budget, long = predictor.predict(["jazz music", exact, long_text])
    assert short.truncated is False and at_budget.truncated is False
    assert long.truncated is True
    assert long.to_dict()["truncated"] is True
    assert "truncated" not in short.to_dict()


@pytest.mark.parametrize("texts", [[""], ["jazz", "   "], "\n\t"])
def test_empty_text_is_a_config_error(predictor, texts):
    with pytest.raises(ConfigError, match="empty"):
        predictor.predict(texts)


def test_bad_threshold_and_rule(predictor):
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        predictor.predict("jazz", threshold=float("nan"))
    with pytest.raises(ConfigError, match="Unknown consistency rule"):
        predictor.predict("jazz", rule="strict")


def test_from_pretrained_round_trip(model, predictor, tmp_path, tiny_docs):
    texts = [text for text, _ in tiny_docs]
    model.save_pretrained(tmp_path / "ckpt")
    loaded = Predictor.from_pretrained(tmp_path / "ckpt", device="cpu", batch_size=3)  # same batches, same padding
    loaded.warm_up()
    np.testing.assert_array_equal(loaded.scores(texts), predictor.scores(texts))
    assert [p.paths for p in loaded.predict(texts)] == [p.paths for p in predictor.predict(texts)]


def test_evaluate_lists_exactly_the_documents_predicted_wrong(model, tiny_tree, tiny_docs):
    from hpt_core.data import Dataset, Document

    docs = [Document(text, tiny_tree.closure([tiny_tree.index(path)])) for text, path in tiny_docs]
    dataset = Dataset(docs, tiny_tree, "tiny")
    predictor = FixedScores(model, scores_of(tiny_tree, HAND_SCORES))
    report, mistakes = predictor.evaluate(dataset)
    predicted = set(apply_rule(scores_of(tiny_tree, HAND_SCORES), tiny_tree))
    wrong = [d for d in docs if set(d.labels) != predicted]
    assert [m.text for m in mistakes] == [d.text for d in wrong] and report.n_documents == len(docs)
    first = mistakes[0]
    assert set(first.predicted) == predicted and len(first.scores) == tiny_tree.num_labels
    assert first.gold_paths == [tiny_tree.path(max(first.gold, key=lambda i: tiny_tree.depth_of[i]))]
    assert ["Science", "Physics", "Quantum optics"] in first.predicted_paths
    with pytest.raises(ConfigError, match="no documents"):
        predictor.evaluate(Dataset([], tiny_tree, "empty"))


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_cpu_inference_options_stay_close_to_fp32(model, tiny_docs, precision):
    texts = [text for text, _ in tiny_docs]
    reference = Predictor(model).scores(texts)
    fast = Predictor(model, precision=precision)
    scores = fast.scores(texts)
    assert scores.shape == reference.shape and np.isfinite(scores).all()
    assert np.abs(scores - reference).max() < 0.25  # a tiny random model; real checkpoints: docs/benchmarks.md
    if precision == "int8":
        assert fast.model is not model and any("quantized" in type(m).__module__ for m in fast.model.modules())
        assert not any("quantized" in type(m).__module__ for m in model.modules())  # the original is untouched
    assert fast.predict(texts[0])[0].text == texts[0]


def test_auto_precision_is_bf16_only_where_the_cpu_has_bf16_instructions(model):
    from hpt_core.device import native_bf16

    chosen = Predictor(model, precision="auto").precision
    assert chosen == ("bf16" if native_bf16(model.device) else "fp32")
    assert not native_bf16(torch.device("meta"))  # never on non-CPU devices


def test_unknown_precision_is_refused(model):
    with pytest.raises(ConfigError, match="Unknown precision 'fp8'"):
        Predictor(model, precision="fp8")
