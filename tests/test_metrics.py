"""Tests of hpt_core.metrics: hand-computed examples, sklearn agreement, a brute-force property check, errors."""

from __future__ import annotations

import importlib.util
import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from hpt_core.errors import ConfigError
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.metrics import EvalReport, evaluate_sets, frequency_buckets, hierarchical_scores, multi_hot

WOS_TAXONOMY = Path(__file__).resolve().parents[2] / "shared" / "data" / "wos" / "wos.taxnomy"
WOS_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "wos-1k"


@pytest.fixture
def small() -> LabelHierarchy:
    return LabelHierarchy.from_paths([["A", "a1"], ["A", "a2"], ["B", "b1"]])


def _ids(h: LabelHierarchy) -> dict[str, int]:
    return {name: h.index(name) for name in ["A", "B", "a1", "a2", "b1"]}


def _hand_example(h: LabelHierarchy) -> tuple[list[set[int]], list[set[int]]]:
    """Three documents; ``b1`` never occurs (neither gold nor predicted), ``B`` is predicted but never gold."""
    i = _ids(h)
    gold = [{i["A"], i["a1"]}, {i["A"], i["a2"]}, {i["A"], i["a1"]}]
    pred = [{i["A"], i["a1"]}, {i["A"], i["a1"]}, {i["B"]}]
    return gold, pred


# By hand: A: TP 2, pred 2, gold 3 -> P 1, R 2/3, F1 0.8.   B: TP 0, pred 1, gold 0 -> 0.
# a1: TP 1, pred 2, gold 2 -> 0.5.   a2: TP 0, pred 0, gold 1 -> 0.   b1: never occurs -> 0.
HAND_F1 = {"A": 0.8, "B": 0.0, "a1": 0.5, "a2": 0.0, "b1": 0.0}
HAND_MACRO = (0.8 + 0.0 + 0.5 + 0.0 + 0.0) / 5  # 0.26: the never-occurring b1 counts as 0
HAND_MICRO = 2 * (3 / 5) * (3 / 6) / (3 / 5 + 3 / 6)  # pooled TP 3, pred 5, gold 6 -> 6/11


def test_hand_example_macro_counts_never_occurring_label_as_zero(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    report = evaluate_sets(gold, pred, small)
    assert report.macro_f1 == pytest.approx(HAND_MACRO)
    assert report.macro_f1 == pytest.approx(0.26)
    # Averaging only over labels that occur would give a different (higher) number.
    assert report.macro_f1 < (0.8 + 0.0 + 0.5 + 0.0) / 4
    assert report.micro_f1 == pytest.approx(HAND_MICRO)
    assert report.micro_f1 == pytest.approx(6 / 11)
    assert report.n_documents == 3
    by_label = {row["label"]: row for row in report.per_label}
    ids = _ids(small)
    for name, expected in HAND_F1.items():
        row = by_label[small.path_string(ids[name])]
        assert row["f1"] == pytest.approx(expected), name
        assert row["depth"] == small.depth_of[ids[name]]
    a = by_label["A"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(1.0), pytest.approx(2 / 3), 3)
    assert by_label["B > b1"]["support"] == 0
    assert [row["label"] for row in report.per_label] == [small.path_string(i) for i in range(small.num_labels)]


def test_gold_is_closed_under_ancestors(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    i = _ids(small)
    leaves_only = [{i["a1"]}, {i["a2"]}, {i["a1"]}]
    assert evaluate_sets(leaves_only, pred, small).to_dict() == evaluate_sets(gold, pred, small).to_dict()


def test_per_depth_restricts_to_labels_of_that_depth(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    report = evaluate_sets(gold, pred, small)
    assert sorted(report.per_depth) == [0, 1]
    # Depth 0 (A, B): macro (0.8 + 0) / 2; pooled TP 2, pred 3, gold 3 -> 2/3.
    assert report.per_depth[0]["macro_f1"] == pytest.approx(0.4)
    assert report.per_depth[0]["micro_f1"] == pytest.approx(2 / 3)
    assert report.per_depth[0]["n_labels"] == 2
    # Depth 1 (a1, a2, b1): macro 0.5 / 3; pooled TP 1, pred 2, gold 3 -> P 1/2, R 1/3, F1 0.4.
    assert report.per_depth[1]["macro_f1"] == pytest.approx(0.5 / 3)
    assert report.per_depth[1]["micro_f1"] == pytest.approx(0.4)
    assert report.per_depth[1]["n_labels"] == 3


def test_sklearn_macro_with_zero_division_matches_definition() -> None:
    """sklearn's macro over all labels, zero_division=0, gives 0 to labels with neither gold nor prediction."""
    y = np.array([[1, 0, 0, 0], [1, 1, 0, 0]])
    p = np.array([[1, 0, 0, 1], [0, 0, 0, 0]])
    # Label 0: P 1, R 1/2 -> 2/3. Label 1: gold only -> 0. Label 2: nothing -> 0. Label 3: pred only -> 0.
    got = f1_score(y, p, average="macro", zero_division=0, labels=list(range(4)))
    assert got == pytest.approx((2 / 3) / 4)
    per = f1_score(y, p, average=None, zero_division=0, labels=list(range(4)))
    assert per.tolist() == pytest.approx([2 / 3, 0.0, 0.0, 0.0])
    # Nothing at all anywhere: every label 0, macro and micro 0.
    zeros = np.zeros((2, 3), dtype=np.uint8)
    assert f1_score(zeros, zeros, average="macro", zero_division=0) == 0.0
    assert f1_score(zeros, zeros, average="micro", zero_division=0) == 0.0


def _random_closed_sets(rng: np.random.Generator, h: LabelHierarchy, n: int) -> list[set[int]]:
    leaves = [i for i in range(h.num_labels) if h.is_leaf(i)]
    out = []
    for _ in range(n):
        k = int(rng.integers(1, 3))
        chosen = rng.choice(leaves, size=k, replace=False).tolist()
        out.append(set(h.closure(chosen)))
    return out


def _random_pred_sets(rng: np.random.Generator, h: LabelHierarchy, n: int) -> list[set[int]]:
    density = float(rng.uniform(0.0, 0.5))
    return [set(np.flatnonzero(rng.random(h.num_labels) < density).tolist()) for _ in range(n)]


def test_micro_and_macro_equal_sklearn_on_multi_hot(small: LabelHierarchy) -> None:
    rng = np.random.default_rng(0)
    h = LabelHierarchy.from_paths([["A", "a1", "x"], ["A", "a2"], ["B", "b1"], ["B", "b2", "y"], ["C", "c1"]])
    for hierarchy in (small, h):
        gold = _random_closed_sets(rng, hierarchy, 30)
        pred = _random_pred_sets(rng, hierarchy, 30)
        report = evaluate_sets(gold, pred, hierarchy)
        y, p = multi_hot(gold, hierarchy.num_labels), multi_hot(pred, hierarchy.num_labels)
        labels = list(range(hierarchy.num_labels))
        assert report.micro_f1 == pytest.approx(f1_score(y, p, average="micro", zero_division=0))
        assert report.macro_f1 == pytest.approx(f1_score(y, p, average="macro", zero_division=0, labels=labels))
        for depth in range(hierarchy.num_levels):
            ids = hierarchy.labels_at_depth(depth)
            assert report.per_depth[depth]["macro_f1"] == pytest.approx(
                f1_score(y, p, average="macro", zero_division=0, labels=ids)
            )


def _brute_force_f1(gold: list[set[int]], pred: list[set[int]], num_labels: int) -> list[float]:
    """The definition, in plain Python."""
    out = []
    for c in range(num_labels):
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if c in g and c in p)
        n_pred = sum(1 for p in pred if c in p)
        n_gold = sum(1 for g in gold if c in g)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        out.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return out


def test_random_property_per_label_f1_matches_brute_force() -> None:
    rng = np.random.default_rng(1234)
    h = LabelHierarchy.from_paths([["A", "a1", "x"], ["A", "a2"], ["B", "b1"], ["B", "b2", "y"], ["C", "c1"]])
    for _ in range(20):
        n = int(rng.integers(1, 25))
        gold = _random_closed_sets(rng, h, n)
        pred = _random_pred_sets(rng, h, n)
        report = evaluate_sets(gold, pred, h)
        expected = _brute_force_f1(gold, pred, h.num_labels)
        assert [row["f1"] for row in report.per_label] == pytest.approx(expected)
        assert report.macro_f1 == pytest.approx(sum(expected) / h.num_labels)


def test_frequency_buckets_partition_sizes_and_order() -> None:
    rng = np.random.default_rng(7)
    for num_labels in (1, 3, 5, 7, 23, 141):
        counts = rng.integers(0, 6, size=num_labels).tolist()  # many ties
        buckets = frequency_buckets(counts)
        assert len(buckets) == min(5, num_labels)
        flat = [i for b in buckets for i in b]
        assert sorted(flat) == list(range(num_labels))
        sizes = [len(b) for b in buckets]
        assert max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)
        # Ranked by count descending, ties by id.
        assert flat == sorted(range(num_labels), key=lambda i: (-counts[i], i))
        for upper, lower in itertools.pairwise(buckets):
            assert min(counts[i] for i in upper) >= max(counts[i] for i in lower)
    assert frequency_buckets([5, 9, 9, 1], n_buckets=2) == [[1, 2], [0, 3]]


def test_per_bucket_records(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    ids = _ids(small)
    counts = [0] * small.num_labels
    for name, c in {"A": 50, "B": 10, "a1": 30, "a2": 20, "b1": 10}.items():
        counts[ids[name]] = c
    report = evaluate_sets(gold, pred, small, train_counts=counts)
    assert evaluate_sets(gold, pred, small).per_bucket == []
    assert [b["bucket"] for b in report.per_bucket] == [0, 1, 2, 3, 4]
    assert [b["n_labels"] for b in report.per_bucket] == [1, 1, 1, 1, 1]
    # Order: A (50), a1 (30), a2 (20), then B and b1 tie at 10 -> by id (B before b1).
    assert [b["macro_f1"] for b in report.per_bucket] == pytest.approx([0.8, 0.5, 0.0, 0.0, 0.0])
    assert [(b["min_count"], b["max_count"]) for b in report.per_bucket] == [(50, 50), (30, 30), (20, 20)] + [
        (10, 10)
    ] * 2


def test_wos_hierarchy_buckets_and_depths() -> None:
    if not WOS_TAXONOMY.exists():
        pytest.skip("WOS taxonomy not available")
    h = LabelHierarchy.from_taxonomy(WOS_TAXONOMY)
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 200, size=h.num_labels).tolist()
    gold = _random_closed_sets(rng, h, 50)
    report = evaluate_sets(gold, gold, h, train_counts=counts)
    assert [b["n_labels"] for b in report.per_bucket] == [29, 28, 28, 28, 28]
    assert sum(report.per_depth[d]["n_labels"] for d in report.per_depth) == h.num_labels
    assert report.micro_f1 == pytest.approx(1.0)
    assert report.path_consistency == 1.0


def test_path_consistency_hand_example(small: LabelHierarchy) -> None:
    i = _ids(small)
    gold = [{i["A"], i["a1"]}] * 3
    # Non-top predictions: a1 (no A), a2 (with A), b1 (no B) -> 1 of 3 has its parent.
    pred = [{i["a1"]}, {i["A"], i["a2"]}, {i["b1"], i["A"]}]
    assert evaluate_sets(gold, pred, small).path_consistency == pytest.approx(1 / 3)
    # No non-top predictions at all -> 1.0.
    assert evaluate_sets(gold, [{i["A"]}, set(), {i["B"]}], small).path_consistency == 1.0
    gold_h, pred_h = _hand_example(small)
    assert evaluate_sets(gold_h, pred_h, small).path_consistency == 1.0


def test_to_dict_is_json_with_fractions(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    report = evaluate_sets(gold, pred, small, train_counts=[5, 4, 3, 2, 1])
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) == {
        "micro_f1",
        "macro_f1",
        "hierarchical_precision",
        "hierarchical_recall",
        "hierarchical_f1",
        "per_depth",
        "per_bucket",
        "per_label",
        "path_consistency",
        "n_documents",
    }
    assert sorted(data["per_depth"]) == ["0", "1"]
    fractions = [data["micro_f1"], data["macro_f1"], data["path_consistency"]]
    fractions += [data[f"hierarchical_{k}"] for k in ("precision", "recall", "f1")]
    fractions += [v[k] for v in data["per_depth"].values() for k in ("micro_f1", "macro_f1")]
    fractions += [b["macro_f1"] for b in data["per_bucket"]]
    fractions += [row[k] for row in data["per_label"] for k in ("precision", "recall", "f1")]
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in fractions)
    assert data["macro_f1"] == pytest.approx(0.26)
    assert data["n_documents"] == 3
    assert isinstance(report, EvalReport)


def test_summary_shows_percentages(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    text = evaluate_sets(gold, pred, small).summary()
    assert "micro-F1 54.55 %" in text
    assert "macro-F1 26.00 %" in text
    assert "(3 documents)" in text
    assert "depth 0: micro-F1 66.67 %, macro-F1 40.00 %" in text
    assert "depth 1: micro-F1 40.00 %, macro-F1 16.67 %" in text
    # Hierarchical: the hand example's predictions are closed already, so hP = 3/5, hR = 3/6 as for micro-F1.
    assert "hierarchical F1 54.55 % (3 documents)" in text
    assert "hierarchical P 60.00 %, R 50.00 %" in text


def test_multi_hot() -> None:
    m = multi_hot([[0, 2, 2], [], (1,)], 3)
    assert m.shape == (3, 3)
    assert m.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]
    assert multi_hot([], 4).shape == (0, 4)
    with pytest.raises(ConfigError, match=r"label_sets\[1\] contains label id 3, out of range"):
        multi_hot([[0], [3]], 3)


def test_errors(small: LabelHierarchy) -> None:
    gold, pred = _hand_example(small)
    with pytest.raises(ConfigError, match="gold has 3 documents but pred has 2"):
        evaluate_sets(gold, pred[:2], small)
    with pytest.raises(ConfigError, match=r"[Nn]othing to evaluate"):
        evaluate_sets([], [], small)
    with pytest.raises(ConfigError, match=r"pred\[2\] contains label id 5, out of range"):
        evaluate_sets(gold, [*pred[:2], {5}], small)
    with pytest.raises(ConfigError, match=r"gold\[0\] contains label id -1, out of range"):
        evaluate_sets([{-1}, *gold[1:]], pred, small)
    with pytest.raises(ConfigError, match=r"pred\[0\] contains 'A', which is not an integer label id"):
        evaluate_sets(gold, [{"A"}, *pred[1:]], small)
    with pytest.raises(ConfigError, match=r"gold\[1\] is the string"):
        evaluate_sets([gold[0], "A", gold[2]], pred, small)
    with pytest.raises(ConfigError, match="train_counts has 4 entries but the hierarchy has 5 labels"):
        evaluate_sets(gold, pred, small, train_counts=[1, 2, 3, 4])
    with pytest.raises(ConfigError, match=r"train_counts\[1\] is -2"):
        evaluate_sets(gold, pred, small, train_counts=[1, -2, 3, 4, 5])
    with pytest.raises(ConfigError, match="n_buckets must be a positive integer"):
        frequency_buckets([1, 2, 3], n_buckets=0)
    with pytest.raises(ConfigError, match="train_counts is empty"):
        frequency_buckets([])


# ---------------------------------------------------------------------------------------------- hierarchical P/R/F1
@pytest.fixture
def deep() -> LabelHierarchy:
    """A -> a1 -> {x, y}, A -> a2, B -> b1 (7 labels, 3 levels)."""
    return LabelHierarchy.from_paths([["A", "a1", "x"], ["A", "a1", "y"], ["A", "a2"], ["B", "b1"]])


def _deep_ids(h: LabelHierarchy) -> dict[str, int]:
    return {h.name(i): i for i in range(h.num_labels)}


# By hand, each set augmented with its ancestors (G_i gold, P_i predicted):
#   doc 1: gold x,  pred x      -> G {A, a1, x}, P {A, a1, x}   |P&G| 3, |P| 3, |G| 3
#   doc 2: gold a2, pred a1     -> G {A, a2},    P {A, a1}      |P&G| 1, |P| 2, |G| 2  (wrong sibling: credit for A)
#   doc 3: gold b1, pred B      -> G {B, b1},    P {B}          |P&G| 1, |P| 1, |G| 2  (ancestor only: partial)
#   doc 4: gold x,  pred {}     -> G {A, a1, x}, P {}           |P&G| 0, |P| 0, |G| 3
#   sums: |P&G| 5, |P| 6, |G| 10 -> hP 5/6, hR 5/10 = 1/2, hF = 2 (5/6)(1/2) / (5/6 + 1/2) = (5/6) / (4/3) = 5/8
HAND_HP, HAND_HR, HAND_HF = 5 / 6, 1 / 2, 5 / 8


def test_hierarchical_hand_example(deep: LabelHierarchy) -> None:
    i = _deep_ids(deep)
    gold = [{i["x"]}, {i["a2"]}, {i["b1"]}, {i["x"]}]
    pred = [{i["x"]}, {i["a1"]}, {i["B"]}, set()]
    assert hierarchical_scores(gold, pred, deep.parents) == pytest.approx((HAND_HP, HAND_HR, HAND_HF), abs=1e-15)
    report = evaluate_sets(gold, pred, deep)
    got = (report.hierarchical_precision, report.hierarchical_recall, report.hierarchical_f1)
    assert got == pytest.approx((HAND_HP, HAND_HR, HAND_HF), abs=1e-15)
    # Ancestors given explicitly change nothing: both sides are augmented anyway.
    closed = [set(deep.closure(p)) for p in pred]
    assert hierarchical_scores([set(deep.closure(g)) for g in gold], closed, deep.parents) == pytest.approx(
        (HAND_HP, HAND_HR, HAND_HF), abs=1e-15
    )
    # The flat scores take predictions as given: x and a1 are predicted without their parents (path consistency 0),
    # and micro-F1 counts TP 2 (x, B) of 3 predicted and 10 gold labels -> P 2/3, R 1/5, F1 4/13.
    assert report.path_consistency == 0.0
    assert report.micro_f1 == pytest.approx(4 / 13)


def test_hierarchical_edge_cases(deep: LabelHierarchy) -> None:
    i = _deep_ids(deep)
    parents = deep.parents
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warnings anywhere below
        # Nothing predicted: hP has no denominator -> 0; hR 0; hF 0.
        assert hierarchical_scores([{i["x"]}, {i["b1"]}], [set(), set()], parents) == (0.0, 0.0, 0.0)
        # Nothing gold and nothing predicted: all 0.
        assert hierarchical_scores([set()], [set()], parents) == (0.0, 0.0, 0.0)
        # Nothing gold but something predicted: hP 0/1, hR has no denominator -> 0.
        assert hierarchical_scores([set()], [{i["B"]}], parents) == (0.0, 0.0, 0.0)
        # No documents at all.
        assert hierarchical_scores([], [], parents) == (0.0, 0.0, 0.0)
        # Disjoint subtrees: no shared ancestor, no credit.
        assert hierarchical_scores([{i["x"]}], [{i["b1"]}], parents) == (0.0, 0.0, 0.0)
        report = evaluate_sets([{i["x"]}, {i["b1"]}], [set(), set()], deep)
    assert (report.hierarchical_precision, report.hierarchical_recall, report.hierarchical_f1) == (0.0, 0.0, 0.0)
    # Only an ancestor predicted: G {A, a1, x}, P {A} -> hP 1, hR 1/3, hF 2 (1/3) / (4/3) = 1/2.
    assert hierarchical_scores([{i["x"]}], [{i["A"]}], parents) == pytest.approx((1.0, 1 / 3, 0.5))
    # The parent of the gold leaf: G {A, a1, x}, P {A, a1} -> hP 1, hR 2/3, hF 0.8.
    assert hierarchical_scores([{i["x"]}], [{i["a1"]}], parents) == pytest.approx((1.0, 2 / 3, 0.8))
    # A wrong sibling leaf at depth 2 keeps its parent and grandparent: G {A, a1, x}, P {A, a1, y} -> 2/3 each.
    assert hierarchical_scores([{i["x"]}], [{i["y"]}], parents) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    # A deeper wrong guess under a shallower gold label: G {A, a2}, P {A, a1, x} -> hP 1/3, hR 1/2, hF 0.4.
    assert hierarchical_scores([{i["a2"]}], [{i["x"]}], parents) == pytest.approx((1 / 3, 1 / 2, 0.4))
    # Flat micro-F1 gives the wrong sibling nothing at depth 2 but hierarchical F1 does; exact match scores 1.
    assert hierarchical_scores([{i["x"]}], [{i["x"]}], parents) == (1.0, 1.0, 1.0)


def _brute_force_hierarchical(
    gold: list[set[int]], pred: list[set[int]], h: LabelHierarchy
) -> tuple[float, float, float]:
    """The definition, in plain Python sets."""
    g_sets = [set(h.closure(g)) for g in gold]
    p_sets = [set(h.closure(p)) for p in pred]
    both = sum(len(g & p) for g, p in zip(g_sets, p_sets, strict=True))
    n_pred, n_gold = sum(map(len, p_sets)), sum(map(len, g_sets))
    hp, hr = (both / n_pred if n_pred else 0.0), (both / n_gold if n_gold else 0.0)
    return hp, hr, (2 * hp * hr / (hp + hr) if hp + hr else 0.0)


def test_hierarchical_random_property_matches_brute_force(deep: LabelHierarchy) -> None:
    rng = np.random.default_rng(21)
    for k in range(20):
        n = int(rng.integers(1, 15))
        gold = _random_closed_sets(rng, deep, n)
        pred = _random_pred_sets(rng, deep, n)
        expected = _brute_force_hierarchical(gold, pred, deep)
        assert hierarchical_scores(gold, pred, deep.parents) == pytest.approx(expected)
        if k < 3:  # evaluate_sets runs sklearn per depth: a few suffice
            assert evaluate_sets(gold, pred, deep).hierarchical_f1 == pytest.approx(expected[2])


def test_hierarchical_errors(deep: LabelHierarchy) -> None:
    parents = deep.parents
    with pytest.raises(ConfigError, match="gold has 2 documents but pred has 1"):
        hierarchical_scores([{0}, {1}], [{0}], parents)
    with pytest.raises(ConfigError, match=r"pred\[0\] contains label id 7, out of range"):
        hierarchical_scores([{0}], [{7}], parents)
    with pytest.raises(ConfigError, match=r"parents\[1\] is 5, out of range"):
        hierarchical_scores([{0}], [{0}], [-1, 5])
    with pytest.raises(ConfigError, match="parents has a cycle"):
        hierarchical_scores([{0}], [{0}], [-1, 2, 1])
    with pytest.raises(ConfigError, match="parents is empty"):
        hierarchical_scores([], [], [])
    with pytest.raises(ConfigError, match="parents must hold integer label ids"):
        hierarchical_scores([{0}], [{0}], [-1, "A"])


def test_hierarchical_matches_hiclass_on_wos_slice() -> None:
    """Our scores against ``hiclass.metrics`` (micro average) on 200 real WOS gold paths and a perturbed prediction:
    some exact, some a wrong area of the right domain, some the domain only, some another domain, some nothing."""
    if importlib.util.find_spec("hiclass") is None:
        pytest.skip("hiclass is not installed")
    import hiclass.metrics as hm

    if not all(callable(getattr(hm, f, None)) for f in ("precision", "recall", "f1")):
        pytest.skip("hiclass.metrics has no precision/recall/f1")
    from hpt_core.data import load_dataset

    wos = load_dataset(WOS_ASSETS / "wos_total_1k.json", hierarchy_file=WOS_ASSETS / "wos.taxnomy")
    h = wos.hierarchy
    docs = wos.documents[:200]
    rng = np.random.default_rng(0)
    gold, pred = [], []
    for doc in docs:
        leaf = max(doc.labels, key=lambda c: h.depth_of[c])
        top = h.ancestors(leaf)[0] if h.ancestors(leaf) else leaf
        kind = int(rng.integers(0, 5))
        if kind == 0:
            guess: list[int] = [leaf]
        elif kind == 1:
            guess = [int(rng.choice([c for c in h.children(top) if c != leaf] or [leaf]))]
        elif kind == 2:
            guess = [top]
        elif kind == 3:
            other = int(rng.choice([t for t in h.labels_at_depth(0) if t != top]))
            guess = [int(rng.choice(h.children(other) or [other]))]
        else:
            guess = []
        gold.append({leaf})
        pred.append(set(guess))

    def rows(sets: list[set[int]]) -> np.ndarray:
        """One root-first path of label ids per document (names can repeat across subtrees; ids cannot), "" padded."""
        paths = [[str(c) for c in h.closure(s)] for s in sets]
        return np.array([p + [""] * (h.num_levels - len(p)) for p in paths], dtype=object)

    y_true, y_pred = rows(gold), rows(pred)
    try:
        theirs = (hm.precision(y_true, y_pred), hm.recall(y_true, y_pred), hm.f1(y_true, y_pred))
    except (TypeError, ValueError) as e:  # a different hiclass API
        pytest.skip(f"hiclass.metrics API differs: {e}")
    ours = hierarchical_scores(gold, pred, h.parents)
    assert ours == pytest.approx(tuple(float(x) for x in theirs), abs=1e-12)
    assert 0.3 < ours[2] < 0.9  # the perturbation is neither trivial nor total
    report = evaluate_sets(gold, pred, h)
    assert report.hierarchical_f1 == pytest.approx(float(theirs[2]), abs=1e-12)
