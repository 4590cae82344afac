"""Figures of the app (``app/figures.py``) on real hierarchies and real predictions of ``checkpoints/20ng-hpt``."""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from app.figures import (  # noqa: E402
    STATUS_COLOURS,
    confusion_figure,
    icicle_figure,
    label_word_map_figure,
    per_depth_figure,
    training_curves_figure,
    tree_figure,
    tree_layout,
    visible_labels,
)
from hpt_core.hierarchy import LabelHierarchy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "checkpoints" / "20ng-hpt"
EVIL = "<img src=x onerror=alert(1)>"


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def ng() -> LabelHierarchy:
    return LabelHierarchy.from_dict(json.loads((CHECKPOINT / "hierarchy.json").read_text()))


@pytest.fixture(scope="module")
def wos() -> LabelHierarchy:
    return LabelHierarchy.from_taxonomy(REPO / "assets" / "wos-1k" / "wos.taxnomy")


@pytest.fixture(scope="module")
def metrics() -> dict:
    return json.loads((CHECKPOINT / "metrics.json").read_text())


@pytest.fixture(scope="module")
def real(ng: LabelHierarchy) -> dict:
    """Two 20NG example posts through the real checkpoint, loaded once.

    The comp.sys.ibm.pc.hardware post is predicted exactly; the sci.electronics post is predicted as sci > sci.med
    (one correct, one wrong, one missed label).
    """
    from hpt_core.predict import Predictor, apply_rule

    examples = json.loads((REPO / "assets" / "examples" / "20ng.json").read_text())
    docs = [
        next(d for d in examples if d["label"][1] == leaf) for leaf in ("comp.sys.ibm.pc.hardware", "sci.electronics")
    ]
    texts = [d["text"] for d in docs]
    predictor = Predictor.from_pretrained(CHECKPOINT, device="cpu")
    assert predictor.hierarchy.names == ng.names
    predictions = predictor.predict(texts, all_scores=True)
    scores = predictor.scores(texts)  # (2, C)
    assert scores.shape == (2, ng.num_labels)
    predicted = [apply_rule(row, ng) for row in scores]
    for prediction, ids in zip(predictions, predicted):
        assert {s.label for s in prediction.labels} == {ng.name(i) for i in ids}
    gold = [ng.closure([ng.index(d["label"])]) for d in docs]
    return {"predictor": predictor, "predictions": predictions, "scores": scores, "predicted": predicted, "gold": gold}


def node_trace(fig):
    (trace,) = [t for t in fig.data if t.name == "labels"]
    return trace


def segment_ends(trace) -> set[tuple[float, float]]:
    """Child ends of the elbow polylines (5 points per edge: 4 corners and a None separator)."""
    xs, ys = list(trace.x), list(trace.y)
    assert len(xs) % 5 == 0
    return {(xs[k + 3], ys[k + 3]) for k in range(0, len(xs), 5)}


def all_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in all_strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in all_strings(v)]
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return [s for v in obj.tolist() for s in all_strings(v)]
    return []


# ---------------------------------------------------------------------------------------------------- layout
def test_tree_layout_is_tidy(ng: LabelHierarchy) -> None:
    pos = tree_layout(ng)
    assert set(pos) == {"Root", *range(ng.num_labels)}
    assert pos["Root"][0] == 0
    for label in range(ng.num_labels):
        parent = ng.parents[label] if ng.parents[label] >= 0 else "Root"
        assert pos[label][0] == ng.depth_of[label] + 1 == pos[parent][0] + 1
    for node in ["Root", *range(ng.num_labels)]:
        kids = ng.children(None if node == "Root" else node)
        if kids:
            assert pos[node][1] == pytest.approx(np.mean([pos[c][1] for c in kids]))
    # leaves take rows 0..19 in depth-first order of children
    dfs_leaves = [leaf for top in ng.children(None) for leaf in (ng.children(top) or [top])]
    assert [pos[leaf][1] for leaf in dfs_leaves] == list(range(20))


def test_tree_layout_subset_adds_ancestors(wos: LabelHierarchy) -> None:
    leaf = wos.labels_at_depth(1)[40]
    pos = tree_layout(wos, [leaf])
    parent = wos.parents[leaf]
    assert set(pos) == {"Root", parent, leaf}
    assert pos[leaf] == (2.0, 0.0) and pos[parent] == (1.0, 0.0) and pos["Root"] == (0.0, 0.0)


def test_visible_labels_on_wos(wos: LabelHierarchy) -> None:
    leaf = wos.labels_at_depth(1)[40]
    parent = wos.parents[leaf]
    assert wos.num_labels == 141
    assert visible_labels(wos, {leaf}) == list(range(141))  # auto: 141 <= max_full=150 shows the full tree
    shown = visible_labels(wos, {leaf}, max_full=100)  # auto above max_full: the predicted path and siblings
    assert shown == visible_labels(wos, {leaf}, mode="paths")
    assert set(wos.ancestors(leaf)) <= set(shown) and leaf in shown
    assert set(wos.children(parent)) <= set(shown)  # siblings of the leaf
    assert set(wos.children(None)) <= set(shown)  # siblings of its ancestor
    assert len(shown) == len(wos.children(None)) + len(wos.children(parent)) <= 141 // 2
    assert visible_labels(wos, {leaf}, mode="full") == list(range(141))
    assert visible_labels(wos, set(), mode="paths") == wos.children(None)
    other = wos.labels_at_depth(1)[0]  # `extra` (gold) adds its own path and siblings
    with_gold = visible_labels(wos, {leaf}, mode="paths", extra={other})
    assert set(wos.children(wos.parents[other])) <= set(with_gold) and set(shown) < set(with_gold)
    with pytest.raises(ValueError, match="tree mode"):
        visible_labels(wos, {leaf}, mode="everything")


# ---------------------------------------------------------------------------------------------------- tree figure
def test_tree_figure_on_real_predictions(ng: LabelHierarchy, real: dict) -> None:
    for row, predicted, prediction in zip(real["scores"], real["predicted"], real["predictions"]):
        assert predicted, "the checkpoint predicts at least one label for these examples"
        fig = tree_figure(ng, row.tolist(), predicted, title="Prediction")
        nodes = node_trace(fig)
        ids = list(nodes.customdata)
        assert sorted(ids) == list(range(ng.num_labels))  # 27 labels <= 150: full tree in auto mode
        pos = tree_layout(ng)
        assert [(x, y) for x, y in zip(nodes.x, nodes.y)] == [pos[i] for i in ids]
        # every node's hover names its path, depth, score and probability
        probability = {ng.index(s.path): s.probability for s in prediction.scores}
        for label, hover in zip(ids, nodes.hovertext):
            assert html.escape(ng.path_string(label)) in hover
            assert f"depth {ng.depth_of[label]}" in hover
            assert f"score {row[label]:.2f} · p={probability[label]:.2f}" in hover
        # predicted paths (predicted labels and their ancestors) are the highlighted edges, and only they
        edges, hot = fig.data[0], fig.data[1]
        on_path = set(ng.closure(predicted))
        assert segment_ends(hot) == {pos[i] for i in on_path}
        assert segment_ends(edges) == {pos[i] for i in range(ng.num_labels) if i not in on_path}
        # colour = sigmoid(score); size grows with the score; predicted nodes thickly outlined
        assert list(nodes.marker.color) == pytest.approx([sigmoid(row[i]) for i in ids])
        order = np.argsort([row[i] for i in ids])
        sizes = np.asarray(nodes.marker.size)[order]
        assert np.all(np.diff(sizes) >= 0) and sizes[-1] > sizes[0] + 5
        widths = dict(zip(ids, nodes.marker.line.width))
        assert all((widths[i] >= 3) == (i in predicted) for i in ids)
        assert nodes.marker.colorbar.title.text == "probability"
        assert fig.layout.title.text == "Prediction"
        assert fig.layout.uirevision and fig.layout.template.layout.paper_bgcolor == "white"


def test_tree_figure_evaluation_view(ng: LabelHierarchy, real: dict) -> None:
    row, predicted = real["scores"][0], real["predicted"][0]
    for gold in (real["gold"][0], real["gold"][1]):  # its own gold, then the other text's gold (mostly wrong)
        fig = tree_figure(ng, row.tolist(), predicted, gold=gold)
        nodes = node_trace(fig)
        colours = dict(zip(nodes.customdata, nodes.marker.line.color))
        for label in range(ng.num_labels):
            if label in predicted and label in gold:
                assert colours[label] == STATUS_COLOURS["correct"]
            elif label in predicted:
                assert colours[label] == STATUS_COLOURS["wrong"]
            elif label in gold:
                assert colours[label] == STATUS_COLOURS["missed"]
            else:
                assert colours[label] not in STATUS_COLOURS.values()
        legend = [t.name for t in fig.data if t.showlegend is not False]
        assert legend == ["correct", "wrong", "missed"]
    # the comp post judged against the sci post's gold: the whole sci path is missed
    fig = tree_figure(ng, row.tolist(), predicted, gold=real["gold"][1])
    hovers = dict(zip(node_trace(fig).customdata, node_trace(fig).hovertext))
    assert all("missed" in hovers[g] for g in real["gold"][1] if g not in predicted)


def test_tree_figure_compare_view(ng: LabelHierarchy, real: dict) -> None:
    a, b = real["predicted"]
    differs = set(a) - set(b)
    assert differs
    fig = tree_figure(ng, real["scores"][0].tolist(), a, differs=differs)
    nodes = node_trace(fig)
    symbols = dict(zip(nodes.customdata, nodes.marker.symbol))
    assert {i for i, s in symbols.items() if s == "diamond"} == differs
    assert "predicted by this model only" in [t.name for t in fig.data]
    assert all("predicted by this model only" in h for i, h in zip(nodes.customdata, nodes.hovertext) if i in differs)


def test_tree_figure_without_scores_and_axes(ng: LabelHierarchy, wos: LabelHierarchy) -> None:
    fig = tree_figure(ng)
    nodes = node_trace(fig)
    assert nodes.marker.color == "#9e9e9e" and nodes.marker.colorbar.title.text is None
    assert len(fig.data[1].x) == 0  # nothing predicted, nothing highlighted
    assert fig.layout.height == max(360, 120 + 26 * 20)  # grows with the 20 visible leaves
    assert list(fig.layout.xaxis.ticktext) == ["Root", "depth 0", "depth 1"]
    assert fig.layout.yaxis.visible is False
    (root,) = [t for t in fig.data if t.name == "Root"]
    assert root.marker.color == "#9e9e9e" and root.marker.size < 10
    assert tree_figure(ng, height=500).layout.height == 500
    long_name = max(ng.names, key=len)  # "comp.sys.ibm.pc.hardware" is exactly 24 chars: kept whole
    assert long_name in nodes.text
    # WOS (141 labels) with one predicted leaf in paths mode
    leaf = wos.labels_at_depth(1)[40]
    fig = tree_figure(wos, predicted=[leaf], mode="paths")
    shown = list(node_trace(fig).customdata)
    assert sorted(shown) == visible_labels(wos, {leaf}, mode="paths") and len(shown) <= 141 // 2
    assert len(node_trace(tree_figure(wos, predicted=[leaf])).customdata) == 141  # auto: 141 <= 150
    truncated = [t for t in node_trace(tree_figure(wos, mode="full")).text if t.endswith("…")]
    assert truncated and all(len(t) == 24 for t in truncated)
    with pytest.raises(ValueError, match="141 labels"):
        tree_figure(wos, scores=[0.0] * 27)


def test_untrusted_label_names_are_escaped() -> None:
    h = LabelHierarchy.from_paths([[EVIL, "child & <b>bold</b>"], [EVIL, "other"], ["Safe", "x"]])
    evil = h.index([EVIL])
    scores = [1.0, -1.0, 2.0, 0.5, -2.0]
    figures = [
        tree_figure(h, scores, [evil, h.index([EVIL, "other"])], gold=[evil], differs=[evil], title=EVIL),
        icicle_figure(h, scores, [3, 1, 1, 2, 0], title=EVIL),
        label_word_map_figure(h, np.arange(10.0).reshape(5, 2), selected=evil, neighbours=[(EVIL, 0.9, 1.0, 2.0)]),
        per_depth_figure({EVIL: {"0": {"micro_f1": 0.5, "macro_f1": 0.4}}}),
        confusion_figure([EVIL, "Safe", "(none)"], [[1, 0, 0], [0, 2, 0], [0, 0, 0]], title=EVIL),
    ]
    for fig in figures:
        strings = all_strings(fig.to_plotly_json())
        assert not [s for s in strings if "<img" in s or "<b>bold" in s], fig.data[0].type
        assert any("&lt;img" in s for s in strings), fig.data[0].type
        assert "<img" not in json.dumps(json.loads(fig.to_json()))


def test_display_names_from_the_shipped_label_names_file(ng: LabelHierarchy, real: dict) -> None:
    from hpt_core.label_names import load_label_names

    names = load_label_names(REPO / "assets" / "label-names" / "20ng.tsv", ng)
    assert len(names) == ng.num_labels == 27
    comp, graphics = ng.index("comp"), ng.index("comp.graphics")
    display = {i: n.name for i, n in names.items() if i != graphics}  # as if the file did not name comp.graphics
    notes = {i: n.description for i, n in names.items() if n.description}
    row = real["scores"][0].tolist()
    nodes = node_trace(tree_figure(ng, row, real["predicted"][0], display=display, notes=notes))
    k = list(nodes.customdata).index(comp)
    assert nodes.text[k] == "computers"  # the display name names the node
    assert nodes.hovertext[k].startswith("<b>comp</b><br>shown as <i>computers</i><br>computer hardware, software")
    k = list(nodes.customdata).index(graphics)  # a label without a display name keeps its own name
    assert nodes.text[k] == "comp.graphics" and "shown as" not in nodes.hovertext[k]
    icicle = icicle_figure(ng, row, display=display, notes=notes).data[0]
    assert icicle.labels[comp + 1] == "computers" and "shown as <i>computers</i>" in icicle.customdata[comp + 1][0]
    word_map = label_word_map_figure(ng, np.zeros((ng.num_labels, 2)), selected=comp, display=display)
    assert "<b>computers</b>" in word_map.layout.annotations[0].text
    assert "computers" in [t.name for t in word_map.data]  # the top-level traces carry the display names
    # untrusted display names and descriptions are escaped like label names
    evil = tree_figure(ng, display={comp: EVIL}, notes={comp: EVIL})
    strings = all_strings(evil.to_plotly_json())
    assert not [s for s in strings if "<img" in s] and any("&lt;img" in s for s in strings)


# ---------------------------------------------------------------------------------------------------- icicle
def icicle_check(trace) -> None:
    ids, parents, values = list(trace.ids), list(trace.parents), list(trace.values)
    assert len(set(ids)) == len(ids)
    assert trace.branchvalues == "total"
    for node, value in zip(ids, values):
        kids = sum(v for p, v in zip(parents, values) if p == node)
        assert value >= kids - 1e-9


def test_icicle_with_real_counts_and_scores(ng: LabelHierarchy, metrics: dict, real: dict) -> None:
    support = {ng.index(row["label"]): row["support"] for row in metrics["test"]["per_label"]}
    counts = [support[i] for i in range(ng.num_labels)]
    row = real["scores"][0]
    trace = icicle_figure(ng, row.tolist(), counts, title="20NG test").data[0]
    icicle_check(trace)
    assert trace.ids[0] == "All labels" and trace.parents[0] == ""
    assert list(trace.ids[1:]) == [html.escape(ng.path_string(i)) for i in range(ng.num_labels)]
    assert [c[1] for c in trace.customdata] == list(range(-1, ng.num_labels))
    assert trace.parents[ng.index(["comp", "comp.graphics"]) + 1] == "comp"
    values = dict(zip(trace.ids, trace.values))
    assert values["comp &gt; comp.graphics"] == support[ng.index("comp.graphics")]
    assert values["All labels"] == sum(values[ng.name(t)] for t in ng.children(None))
    assert list(trace.marker.colors[1:]) == pytest.approx([sigmoid(s) for s in row])
    hover = trace.customdata[ng.index("comp.graphics") + 1][0]
    assert "comp &gt; comp.graphics" in hover and f"{support[ng.index('comp.graphics')]} documents" in hover


def test_icicle_uniform_and_colliding_paths(wos: LabelHierarchy) -> None:
    trace = icicle_figure(wos).data[0]
    icicle_check(trace)
    values = dict(zip(trace.ids, trace.values))
    assert values["All labels"] == len([i for i in range(141) if wos.is_leaf(i)])
    top = wos.children(None)[0]
    assert values[html.escape(wos.path_string(top))] == len(wos.children(top))
    h = LabelHierarchy.from_paths([["a > b"], ["a", "b"], ["All labels", "x"]])  # path strings collide
    icicle_check(icicle_figure(h, counts=[5, 2, 1, 3, 0]).data[0])


# ---------------------------------------------------------------------------------------------------- label words
def test_label_word_map_with_real_label_words(ng: LabelHierarchy, real: dict) -> None:
    from hpt_core.explain import label_word_matrix, nearest_words

    model = real["predictor"].model
    vectors = label_word_matrix(model).numpy()  # (C, d)
    mean = vectors.mean(0)
    _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    coords = (vectors - mean) @ vt[:2].T  # (C, 2), PCA instead of UMAP to keep the test fast
    selected = ng.index("sci.space")
    (words,) = nearest_words(model, top_k=5, labels=[selected])
    embeddings = model.word_embeddings.weight.detach().float().cpu().numpy()
    word_ids = model.tokenizer.convert_tokens_to_ids([w for w, _ in words.words])
    word_xy = (embeddings[word_ids] - mean) @ vt[:2].T  # (5, 2)
    neighbours = [(w, s, float(x), float(y)) for (w, s), (x, y) in zip(words.words, word_xy)]

    fig = label_word_map_figure(ng, coords, selected=selected, neighbours=neighbours)
    tops = ng.children(None)
    assert len(fig.data) == len(tops) + 3
    assert [t.name for t in fig.data[: len(tops)]] == [ng.name(t) for t in tops]
    covered = []
    for top, trace in zip(tops, fig.data):
        covered += list(trace.customdata)
        assert all(i == top or ng.ancestors(i)[0] == top for i in trace.customdata)
        assert list(trace.x) == pytest.approx(coords[list(trace.customdata), 0])
    assert sorted(covered) == list(range(ng.num_labels))
    assert len({t.marker.color for t in fig.data[: len(tops)]}) == len(tops)
    (star,) = [t for t in fig.data if t.name == "selected label"]
    assert star.marker.symbol == "star" and (star.x[0], star.y[0]) == pytest.approx(tuple(coords[selected]))
    assert any("sci.space" in a.text for a in fig.layout.annotations)
    (links,) = [t for t in fig.data if t.name == "neighbour links"]
    assert len(links.x) == 3 * len(neighbours) and links.x[0] == pytest.approx(coords[selected, 0])
    (near,) = [t for t in fig.data if t.name == "nearest words"]
    assert list(near.text) == [w for w, _ in words.words]
    # the words sit around the star, nearer when more similar (their UMAP points would pile onto it)
    distance = np.hypot(np.asarray(near.x) - coords[selected, 0], np.asarray(near.y) - coords[selected, 1])
    assert np.all(np.diff(distance) >= -1e-9) and distance.min() > 0
    assert fig.layout.xaxis.title.text == "UMAP 1" and fig.layout.yaxis.showticklabels is False
    assert len(label_word_map_figure(ng, coords).data) == len(tops)


# ---------------------------------------------------------------------------------------------------- metrics
def test_training_curves(metrics: dict) -> None:
    empty = training_curves_figure([], [], [])
    assert len(empty.data) == 0
    assert [a.text for a in empty.layout.annotations] == ["Training has not started yet"]
    assert empty.layout.yaxis.title.text == "training loss" and empty.layout.yaxis2.title.text == "dev F1 (%)"

    history = metrics["training"]["history"]
    steps = list(range(1, metrics["training"]["steps"] + 1))
    losses = [2.0 / math.sqrt(s) + 0.1 * math.sin(s) for s in steps]
    fig = training_curves_figure(steps, losses, history)
    names = [t.name for t in fig.data]
    assert names == ["loss", "loss (10-step mean)", "dev macro-F1", "dev micro-F1"]
    assert fig.data[1].y[-1] == pytest.approx(np.mean(losses[-10:]))
    assert fig.data[1].y[0] == pytest.approx(losses[0])
    macro = fig.data[2]
    assert list(macro.x) == [h["step"] for h in history]
    assert list(macro.y) == pytest.approx([100 * h["dev_macro_f1"] for h in history])
    assert fig.data[3].y[-1] == pytest.approx(100 * history[-1]["dev_micro_f1"])
    assert fig.data[0].yaxis == "y" and macro.yaxis == "y2"
    assert not fig.layout.annotations
    evals_only = training_curves_figure([], [], history[:1])  # first evaluation before any loss was logged
    assert [t.name for t in evals_only.data] == ["dev macro-F1", "dev micro-F1"]
    with pytest.raises(ValueError):
        training_curves_figure([1, 2], [0.5], [])


def test_per_depth_figure(metrics: dict) -> None:
    per_depth = metrics["test"]["per_depth"]
    fig = per_depth_figure({"test": per_depth})
    assert len(fig.data) == 2 and fig.layout.barmode == "group"
    for trace, key in zip(fig.data, ("micro_f1", "macro_f1")):
        assert list(trace.x) == ["depth 0", "depth 1"]
        assert list(trace.y) == pytest.approx([100 * per_depth[d][key] for d in ("0", "1")])
        assert list(trace.text) == [f"{100 * per_depth[d][key]:.1f}" for d in ("0", "1")]
    assert all(len(t.split(".")[1]) == 1 for t in fig.data[0].text)  # one decimal, as the tab shows it
    both = per_depth_figure({"dev": metrics["dev"]["per_depth"], "test": {int(k): v for k, v in per_depth.items()}})
    assert len(both.data) == 4 and list(both.data[2].x) == ["depth 0", "depth 1"]
    assert both.data[3].y[1] == pytest.approx(100 * per_depth["1"]["macro_f1"])


def test_confusion_figure(ng: LabelHierarchy) -> None:
    labels = [ng.name(t) for t in ng.children(None)] + ["(none)"]
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 50, size=(len(labels), len(labels))).tolist()
    fig = confusion_figure(labels, matrix)
    heat = fig.data[0]
    assert [list(r) for r in heat.z] == matrix
    assert list(heat.x) == labels and list(heat.y) == labels
    assert fig.layout.title.text == "Top-level confusion"
    assert fig.layout.xaxis.title.text == "predicted" and fig.layout.yaxis.title.text == "gold"
    with pytest.raises(ValueError, match="8 x 8"):
        confusion_figure(labels, matrix[:-1])
