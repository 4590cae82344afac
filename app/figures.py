"""Plotly figures for HPT Studio: plain Python in (a ``LabelHierarchy``, lists, dicts, numbers), ``go.Figure`` out.

No torch and no gradio here. Every user-provided string (label names, words, series names, titles) is passed
through ``html.escape`` before it reaches hover text, node text, titles or annotations, because plotly renders a
subset of HTML in those places and label names come from untrusted uploads.

Shared look: ``TEMPLATE``, ``SCORE_COLORSCALE`` for scores and probabilities, ``TOP_PALETTE`` for top-level labels,
compact ``MARGIN``, and a fixed ``uirevision`` per figure kind so zoom and pan survive updates.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from hpt_core.hierarchy import LabelHierarchy

__all__ = [
    "SCORE_COLORSCALE",
    "TOP_PALETTE",
    "sigmoid",
    "tree_layout",
    "visible_labels",
    "tree_figure",
    "icicle_figure",
    "label_word_map_figure",
    "training_curves_figure",
    "per_depth_figure",
    "confusion_figure",
]

TEMPLATE = "plotly_white"
# Every figure uses TEMPLATE. A template set on a figure is validated and copied each time (~10 ms a figure, most of a
# Classify request's figure time, measured); plotly's default template is applied without that, so the app makes
# TEMPLATE the default once, here, and figures leave the template unset.
pio.templates.default = TEMPLATE
SCORE_COLORSCALE = "Viridis"
TOP_PALETTE: list[str] = list(qualitative.D3) + list(qualitative.Pastel)
MARGIN = {"l": 10, "r": 10, "t": 48, "b": 10}
GREY = "#9e9e9e"
DARK = "#222222"
STATUS_COLOURS = {"correct": "#2ca02c", "wrong": "#d62728", "missed": "#ff7f0e"}
ROOT = "Root"
MAX_NAME_CHARS = 24


# ---------------------------------------------------------------------------------------------------- helpers
def _esc(text: object) -> str:
    return html.escape(str(text))


def _short(name: str, limit: int = MAX_NAME_CHARS) -> str:
    """Truncate (then escape) a name for display next to a marker."""
    return _esc(name if len(name) <= limit else name[: limit - 1] + "…")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _style(fig: go.Figure, kind: str, title: str = "", height: int | None = None) -> go.Figure:
    fig.update_layout(
        margin=MARGIN,
        uirevision=kind,
        title={"text": _esc(title), "x": 0.01, "font": {"size": 15}} if title else None,
        height=height,
    )
    return fig


def _check_scores(hierarchy: LabelHierarchy, values: Sequence[float] | None, what: str) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) for v in values]
    if len(out) != hierarchy.num_labels:
        raise ValueError(f"{what} has {len(out)} entries but the hierarchy has {hierarchy.num_labels} labels.")
    return out


def _check_ids(hierarchy: LabelHierarchy, labels: Iterable[int] | None) -> set[int]:
    ids = {int(i) for i in (labels or ())}
    bad = sorted(i for i in ids if not 0 <= i < hierarchy.num_labels)
    if bad:
        raise ValueError(f"label ids {bad[:5]} are out of range for a hierarchy of {hierarchy.num_labels} labels.")
    return ids


def _caption(hierarchy: LabelHierarchy, label: int, display: Mapping[int, str] | None) -> str:
    """The name shown for a label: its display name when it has one (a label-names file), else its own name."""
    return display[label] if display and label in display else hierarchy.name(label)


def _hover_title(
    hierarchy: LabelHierarchy, label: int, display: Mapping[int, str] | None, notes: Mapping[int, str] | None
) -> str:
    """Hover heading (escaped): the path in bold, then the display name and description when the model has them."""
    text = f"<b>{_esc(hierarchy.path_string(label))}</b>"
    if display and label in display:
        text += f"<br>shown as <i>{_esc(display[label])}</i>"
    if notes and notes.get(label):
        text += f"<br>{_esc(notes[label])}"
    return text


def _top_of(hierarchy: LabelHierarchy, label: int) -> int:
    ancestors = hierarchy.ancestors(label)
    return ancestors[0] if ancestors else label


# ---------------------------------------------------------------------------------------------------- tree
def tree_layout(hierarchy: LabelHierarchy, labels: Iterable[int] | None = None) -> dict[int | str, tuple[float, float]]:
    """Tidy node-link layout ``{node: (x, y)}`` for ``"Root"`` and label ids.

    ``x = depth + 1`` (Root at 0); the leaves of the shown subtree get ``y = 0, 1, 2, ...`` in depth-first order of
    children, and each internal node sits at the mean ``y`` of its shown children. ``labels`` restricts the layout
    to a subset (its ancestors are added).
    """
    graph = hierarchy.to_networkx()
    shown = set(graph.nodes) if labels is None else {ROOT, *hierarchy.closure(_check_ids(hierarchy, labels))}
    pos: dict[int | str, tuple[float, float]] = {}
    next_leaf = 0
    stack: list[tuple[int | str, bool]] = [(ROOT, False)]
    while stack:  # iterative post-order DFS
        node, expanded = stack.pop()
        kids = [c for c in graph.successors(node) if c in shown]
        x = float(graph.nodes[node]["depth"] + 1)
        if not kids:
            pos[node] = (x, float(next_leaf))
            next_leaf += 1
        elif expanded:
            pos[node] = (x, sum(pos[c][1] for c in kids) / len(kids))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(kids))
    return pos


def visible_labels(
    hierarchy: LabelHierarchy,
    predicted: set[int],
    mode: str = "auto",
    extra: set[int] | None = None,
    max_full: int = 150,
) -> list[int]:
    """Label ids to draw: ``"full"`` (all), ``"paths"`` or ``"auto"`` (full up to ``max_full`` labels).

    ``"paths"`` shows the predicted and ``extra`` labels (e.g. gold), their ancestors and the siblings of each of
    them; with nothing to show it falls back to the top level.
    """
    if mode not in ("auto", "full", "paths"):
        raise ValueError(f"Unknown tree mode {mode!r}; choose 'auto', 'full' or 'paths'.")
    if mode == "full" or (mode == "auto" and hierarchy.num_labels <= max_full):
        return list(range(hierarchy.num_labels))
    focus = _check_ids(hierarchy, predicted) | _check_ids(hierarchy, extra)
    out = set(hierarchy.children(None))
    for label in focus:
        chain = hierarchy.ancestors(label)
        out.update(chain)
        out.add(label)
        for ancestor in chain:
            out.update(hierarchy.children(ancestor))
    return sorted(out)


def _elbow(a: tuple[float, float], b: tuple[float, float]) -> tuple[list[float | None], list[float | None]]:
    mid = (a[0] + b[0]) / 2
    return [a[0], mid, mid, b[0], None], [a[1], a[1], b[1], b[1], None]


def tree_figure(
    hierarchy: LabelHierarchy,
    scores: Sequence[float] | None = None,
    predicted: Iterable[int] = (),
    *,
    mode: str = "auto",
    gold: Iterable[int] | None = None,
    differs: Iterable[int] | None = None,
    threshold: float = 0.0,
    title: str = "",
    height: int | None = None,
    display: Mapping[int, str] | None = None,
    notes: Mapping[int, str] | None = None,
) -> go.Figure:
    """Node-link tree of the hierarchy coloured by probability, with predicted paths highlighted.

    ``gold`` turns on the evaluation view (correct / wrong / missed outlines), ``differs`` the compare view (labels
    only this model predicts are drawn as diamonds). ``threshold`` is the score threshold used for ``predicted``;
    hover notes labels above it that the consistency rule dropped. Node ``customdata`` holds the label id.
    ``display`` (label id → display name, from a label-names file) names the nodes, and ``notes`` (label id →
    description) adds to their hover; the path is always in the hover.
    """
    values = _check_scores(hierarchy, scores, "scores")
    chosen = _check_ids(hierarchy, predicted)
    gold_set = _check_ids(hierarchy, gold) if gold is not None else None
    differ_set = _check_ids(hierarchy, differs)
    shown = visible_labels(hierarchy, chosen, mode, extra=(gold_set or set()) | differ_set)
    pos = tree_layout(hierarchy, shown)
    labels = [n for n in pos if n != ROOT]
    labels.sort()
    on_path = set(hierarchy.closure(chosen))
    parents = hierarchy.parents

    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    hot_x: list[float | None] = []
    hot_y: list[float | None] = []
    for label in labels:
        parent = parents[label] if parents[label] >= 0 else ROOT
        xs, ys = _elbow(pos[parent], pos[label])
        (hot_x if label in on_path else edge_x).extend(xs)
        (hot_y if label in on_path else edge_y).extend(ys)

    probs = [sigmoid(values[i]) for i in labels] if values is not None else None
    depth_of = hierarchy.depth_of
    colours, widths, symbols, hovers = [], [], [], []
    for k, label in enumerate(labels):
        status = "predicted" if label in chosen else "not predicted"
        colour, width = (DARK, 3.0) if label in chosen else ("white", 0.8)
        if gold_set is not None:
            status = {(True, True): "correct", (True, False): "wrong", (False, True): "missed"}.get(
                (label in chosen, label in gold_set), "not predicted"
            )
            colour, width = (STATUS_COLOURS[status], 3.0) if status in STATUS_COLOURS else ("white", 0.8)
        if label in differ_set:
            status += " · predicted by this model only"
        line = f"depth {depth_of[label]}"
        if values is not None and probs is not None:
            line += f" · score {values[label]:.2f} · p={probs[k]:.2f}"
            if values[label] > threshold and label not in chosen:
                status += f" (above threshold {threshold:g}, dropped by the consistency rule)"
        colours.append(colour)
        widths.append(width)
        symbols.append("diamond" if label in differ_set else "circle")
        hovers.append(f"{_hover_title(hierarchy, label, display, notes)}<br>{line}<br>{status}")

    marker: dict[str, Any] = {"symbol": symbols, "line": {"color": colours, "width": widths}, "opacity": 1.0}
    if probs is not None:
        marker.update(
            color=probs,
            colorscale=SCORE_COLORSCALE,
            cmin=0.0,
            cmax=1.0,
            size=[8 + 12 * p for p in probs],
            colorbar={"title": {"text": "probability"}, "thickness": 12, "len": 0.6},
        )
    else:
        marker.update(color=GREY, size=10)

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#c8c8c8", "width": 1}))
    fig.add_trace(go.Scatter(x=hot_x, y=hot_y, mode="lines", line={"color": "#1f3b73", "width": 3}))
    fig.data[0].update(name="edges", hoverinfo="skip", showlegend=False)
    fig.data[1].update(name="predicted paths", hoverinfo="skip", showlegend=False)
    fig.add_trace(
        go.Scatter(
            x=[pos[ROOT][0]],
            y=[pos[ROOT][1]],
            mode="markers",
            marker={"color": GREY, "size": 8},
            name=ROOT,
            hovertext=[ROOT],
            hoverinfo="text",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[pos[i][0] for i in labels],
            y=[pos[i][1] for i in labels],
            mode="markers+text",
            marker=marker,
            text=[_short(_caption(hierarchy, i, display)) for i in labels],
            # inner labels above their node (their outgoing edge would strike the name through), leaves to the right
            textposition=[
                "middle right" if not any(c in pos for c in hierarchy.children(i)) else "top center" for i in labels
            ],
            textfont={"size": 11},
            hovertext=hovers,
            hoverinfo="text",
            customdata=labels,
            name="labels",
            showlegend=False,
        )
    )
    legend: list[tuple[str, str, str]] = []
    if gold_set is not None:
        legend += [(name, "circle-open", colour) for name, colour in STATUS_COLOURS.items()]
    if differ_set:
        legend.append(("predicted by this model only", "diamond-open", DARK))
    for name, symbol, colour in legend:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                marker={"symbol": symbol, "size": 12, "line": {"color": colour, "width": 3}, "color": colour},
                hoverinfo="skip",
            )
        )
    max_x = int(max(x for x, _ in pos.values()))
    leaves = sum(1 for node in labels if not any(c in pos for c in hierarchy.children(node)))
    _style(fig, "tree", title, height or max(360, 120 + 26 * leaves))
    fig.update_layout(
        showlegend=bool(legend),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="closest",
    )
    fig.update_xaxes(
        tickvals=list(range(max_x + 1)),
        ticktext=[ROOT] + [f"depth {d}" for d in range(max_x)],
        range=[-0.3, max_x + 1.0],
        showgrid=False,
        zeroline=False,
    )
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig


# ---------------------------------------------------------------------------------------------------- icicle
def icicle_figure(
    hierarchy: LabelHierarchy,
    scores: Sequence[float] | None = None,
    counts: Sequence[int] | None = None,
    title: str = "",
    display: Mapping[int, str] | None = None,
    notes: Mapping[int, str] | None = None,
) -> go.Figure:
    """Icicle of the hierarchy under an "All labels" root, sized by ``counts`` (or one unit per leaf).

    Sizes use ``branchvalues="total"`` with each node's value ``max(own count, sum of its children)``, so parents
    always contain their children; hover shows the real count. Colour is ``sigmoid(score)`` when given. Ids are
    the (escaped) path strings; ``customdata[1]`` holds the label id (-1 for the root) for click handlers.
    ``display``/``notes`` (label id → display name / description) name the blocks and add to their hover.
    """
    values = _check_scores(hierarchy, scores, "scores")
    raw = _check_scores(hierarchy, counts, "counts")
    own = [max(0.0, c) for c in raw] if raw is not None and sum(raw) > 0 else None
    n = hierarchy.num_labels
    total = [0.0] * n
    for label in sorted(range(n), key=lambda i: -hierarchy.depth(i)):  # deepest first
        kids = sum(total[c] for c in hierarchy.children(label))
        total[label] = max(own[label], kids) if own is not None else (kids or 1.0)

    root_id = "All labels"
    ids: list[str] = []
    used = {root_id}
    for label in range(n):
        ident = _esc(hierarchy.path_string(label))
        if ident in used:  # names containing " > " can collide; keep ids unique
            ident = f"{ident} #{label}"
        used.add(ident)
        ids.append(ident)
    parent_ids = ["" if p < 0 else ids[p] for p in hierarchy.parents]
    parent_ids = [root_id if p == "" else p for p in parent_ids]

    hovers = [f"<b>{root_id}</b><br>{hierarchy.num_labels} labels"]
    for label in range(n):
        text = f"{_hover_title(hierarchy, label, display, notes)}<br>depth {hierarchy.depth(label)}"
        if raw is not None:
            text += f" · {int(raw[label])} documents"
        if values is not None:
            text += f" · p={sigmoid(values[label]):.2f}"
        hovers.append(text)
    marker: dict[str, Any] = {"line": {"color": "white", "width": 1}}
    if values is not None:  # Root is always on: probability 1
        marker.update(
            colors=[1.0] + [sigmoid(v) for v in values],
            colorscale=SCORE_COLORSCALE,
            cmin=0.0,
            cmax=1.0,
            showscale=True,
            colorbar={"title": {"text": "probability"}, "thickness": 12, "len": 0.6},
        )
    else:
        marker["colors"] = [GREY] + [
            TOP_PALETTE[hierarchy.children(None).index(_top_of(hierarchy, i)) % len(TOP_PALETTE)] for i in range(n)
        ]
    fig = go.Figure(
        go.Icicle(
            ids=[root_id] + ids,
            parents=[""] + parent_ids,
            labels=[root_id] + [_esc(_caption(hierarchy, i, display)) for i in range(n)],
            values=[sum(total[i] for i in hierarchy.children(None))] + total,
            branchvalues="total",
            marker=marker,
            customdata=[[h, i] for i, h in enumerate(hovers, start=-1)],  # (hover, label id; -1 for the root)
            hovertemplate="%{customdata[0]}<extra></extra>",
            tiling={"orientation": "h"},
            maxdepth=min(hierarchy.num_levels + 1, 4),
        )
    )
    fig.update_traces(textfont={"size": 13}, insidetextfont={"size": 13})
    return _style(fig, "icicle", title, max(520, 40 + 40 * len(hierarchy.children(None))))


# ---------------------------------------------------------------------------------------------------- label words
def label_word_map_figure(
    hierarchy: LabelHierarchy,
    coords: Sequence[Sequence[float]],
    selected: int | None = None,
    neighbours: Sequence[tuple[str, float, float, float]] = (),
    display: Mapping[int, str] | None = None,
) -> go.Figure:
    """2-D map of label words (``coords``: ``(C, 2)``), one trace per top-level label.

    ``selected`` is drawn as a large star with its name; ``neighbours`` are ``(word, similarity, x, y)`` drawn as
    grey text markers joined to the selected label. ``display`` (label id → display name) names the labels.
    """
    xy = np.asarray(coords, dtype=float).reshape(-1, 2)  # (C, 2)
    if xy.shape[0] != hierarchy.num_labels:
        raise ValueError(f"coords has {xy.shape[0]} rows but the hierarchy has {hierarchy.num_labels} labels.")
    fig = go.Figure()
    tops = hierarchy.children(None)
    colour_of = {t: TOP_PALETTE[k % len(TOP_PALETTE)] for k, t in enumerate(tops)}
    for top in tops:
        members = [i for i in range(hierarchy.num_labels) if _top_of(hierarchy, i) == top]
        fig.add_trace(
            go.Scatter(
                x=xy[members, 0],
                y=xy[members, 1],
                mode="markers",
                name=_short(_caption(hierarchy, top, display)),
                legendgroup=str(top),
                marker={
                    "color": colour_of[top],
                    "size": [13 if hierarchy.depth(i) == 0 else 8 for i in members],
                    "line": {"color": "white", "width": 0.5},
                },
                hovertext=[
                    f"{_hover_title(hierarchy, i, display, None)}<br>depth {hierarchy.depth(i)}" for i in members
                ],
                hoverinfo="text",
                customdata=members,
            )
        )
    if selected is not None:
        (label,) = _check_ids(hierarchy, [selected])
        sx, sy = float(xy[label, 0]), float(xy[label, 1])
        wheel = _word_wheel(xy, (sx, sy), neighbours)
        if neighbours:
            line_x: list[float | None] = []
            line_y: list[float | None] = []
            for wx, wy in wheel:
                line_x += [sx, wx, None]
                line_y += [sy, wy, None]
            fig.add_trace(
                go.Scatter(
                    x=line_x,
                    y=line_y,
                    mode="lines",
                    line={"color": "#bdbdbd", "width": 1},
                    name="neighbour links",
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=[w[0] for w in wheel],
                    y=[w[1] for w in wheel],
                    mode="markers+text",
                    name="nearest words",
                    marker={"color": GREY, "size": 5},
                    text=[_esc(n[0]) for n in neighbours],
                    textposition=["middle right" if wx >= sx else "middle left" for wx, _ in wheel],
                    textfont={"size": 11, "color": "#424242"},
                    hovertext=[
                        f"{_esc(n[0])}<br>similarity {float(n[1]):.3f}<br>(placed around the label by similarity; "
                        "closer = more similar)"
                        for n in neighbours
                    ],
                    hoverinfo="text",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[sx],
                y=[sy],
                mode="markers",
                name="selected label",
                marker={
                    "symbol": "star",
                    "size": 22,
                    "color": colour_of[_top_of(hierarchy, label)],
                    "line": {"color": DARK, "width": 1.5},
                },
                hovertext=[_hover_title(hierarchy, label, display, None)],
                hoverinfo="text",
                customdata=[label],
            )
        )
        fig.add_annotation(
            x=sx,
            y=sy,
            text=f"<b>{_short(_caption(hierarchy, label, display))}</b>",
            showarrow=True,
            arrowhead=0,
            ax=0,
            ay=-28,
        )
    _style(fig, "label-word-map", "", 520)
    fig.update_xaxes(title_text="UMAP 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text="UMAP 2", showticklabels=False, zeroline=False)
    return fig


def _word_wheel(
    xy: np.ndarray, centre: tuple[float, float], neighbours: Sequence[tuple[str, float, float, float]]
) -> list[tuple[float, float]]:
    """Display positions of the nearest words: evenly spread around the selected label, nearer when more similar.

    Nearest words sit almost on top of their label in the UMAP plane, so their own coordinates would pile up into
    an unreadable blob; the wheel keeps the order and the similarity readable.
    """
    if not neighbours:
        return []
    span = float(np.ptp(xy, axis=0).max()) if len(xy) > 1 else 1.0
    span = span or 1.0
    out = []
    for k, (_, similarity, _, _) in enumerate(neighbours):
        angle = 2 * math.pi * k / len(neighbours) + math.pi / 2
        radius = span * (0.08 + 0.22 * (1 - max(0.0, min(1.0, float(similarity)))))
        out.append((centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)))
    return out


# ---------------------------------------------------------------------------------------------------- metrics
def _moving_average(values: Sequence[float], window: int) -> list[float]:
    arr = np.asarray(values, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(arr)])
    idx = np.arange(1, len(arr) + 1)
    start = np.maximum(idx - window, 0)
    return ((csum[idx] - csum[start]) / (idx - start)).tolist()  # trailing mean of up to `window` steps


def training_curves_figure(steps: Sequence[int], losses: Sequence[float], evals: Sequence[dict]) -> go.Figure:
    """Training loss per step (left axis, raw plus a 10-step moving average) and dev F1 in % (right axis)."""
    if len(steps) != len(losses):
        raise ValueError(f"steps has {len(steps)} entries but losses has {len(losses)}.")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(losses):
        fig.add_trace(
            go.Scatter(x=list(steps), y=list(losses), mode="lines", name="loss", line={"color": "#9ecae1", "width": 1}),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=list(steps),
                y=_moving_average(losses, 10),
                mode="lines",
                name="loss (10-step mean)",
                line={"color": "#1f77b4", "width": 2.5},
            ),
            secondary_y=False,
        )
    for key, name, colour in (("dev_macro_f1", "dev macro-F1", "#d62728"), ("dev_micro_f1", "dev micro-F1", "#2ca02c")):
        points = [(e["step"], 100 * float(e[key])) for e in evals if e.get(key) is not None and "step" in e]
        if points:
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="markers+lines",
                    name=name,
                    line={"color": colour, "width": 2},
                    hovertemplate=f"{name} %{{y:.1f}}%<br>step %{{x}}<extra></extra>",
                ),
                secondary_y=True,
            )
    if not len(losses) and not fig.data:
        fig.add_annotation(
            text="Training has not started yet", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False
        )
    _style(fig, "training", "", 380)
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0}, hovermode="x unified")
    fig.update_xaxes(title_text="step", rangemode="tozero")
    if steps and max(steps) < 10:  # whole steps only (plotly would tick 0.5, 1.5, …)
        fig.update_xaxes(dtick=1)
    fig.update_yaxes(title_text="training loss", secondary_y=False)
    fig.update_yaxes(title_text="dev F1 (%)", range=[0, 100], showgrid=False, secondary_y=True)
    return fig


def per_depth_figure(per_depth: dict[str, dict[str, dict]]) -> go.Figure:
    """Grouped bars of micro- and macro-F1 (%) per depth for each series (``{series: {depth: metrics}}``)."""
    depths = sorted({int(d) for metrics in per_depth.values() for d in metrics})
    categories = [f"depth {d}" for d in depths]
    fig = go.Figure()
    for k, (series, metrics) in enumerate(per_depth.items()):
        by_depth = {int(d): m for d, m in metrics.items()}
        colour = TOP_PALETTE[k % len(TOP_PALETTE)]
        for key, metric, pattern in (("micro_f1", "micro-F1", ""), ("macro_f1", "macro-F1", "/")):
            heights = [100 * by_depth[d][key] if d in by_depth and key in by_depth[d] else None for d in depths]
            n_labels = [by_depth.get(d, {}).get("n_labels", "?") for d in depths]
            fig.add_trace(
                go.Bar(
                    x=categories,
                    y=heights,
                    name=f"{_esc(series)} {metric}",
                    marker={"color": colour, "pattern": {"shape": pattern}},
                    text=[f"{h:.1f}" if h is not None else "" for h in heights],
                    textposition="outside",
                    customdata=n_labels,
                    hovertemplate=f"{_esc(series)} · %{{x}}<br>{metric} %{{y:.1f}}%<br>%{{customdata}} labels"
                    "<extra></extra>",
                )
            )
    _style(fig, "per-depth", "", 360)
    fig.update_layout(barmode="group", legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0})
    fig.update_yaxes(title_text="F1 (%)", range=[0, 105])
    return fig


def confusion_figure(
    labels: Sequence[str],
    matrix: Sequence[Sequence[int]],
    title: str = "Top-level confusion",
    columns: Sequence[str] | None = None,
) -> go.Figure:
    """Heatmap of counts: rows are gold labels (``labels``), columns predicted ones (``columns``, default ``labels``;
    ``hpt_core.metrics.top_level_confusion`` adds a "(none)" column)."""
    columns = list(labels) if columns is None else list(columns)
    z = [[int(v) for v in row] for row in matrix]
    if len(z) != len(labels) or any(len(row) != len(columns) for row in z):
        raise ValueError(
            f"the confusion matrix must be {len(labels)} x {len(columns)}, one row per gold label and one column "
            "per predicted label."
        )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_short(name, 32) for name in columns],
            y=[_short(name, 32) for name in labels],
            text=z,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar={"title": {"text": "documents"}, "thickness": 12},
            hovertemplate="gold %{y}<br>predicted %{x}<br>%{z} documents<extra></extra>",
        )
    )
    _style(fig, "confusion", title, max(360, 120 + 30 * len(labels)))
    fig.update_xaxes(title_text="predicted", side="bottom", tickangle=-30)
    fig.update_yaxes(title_text="gold", autorange="reversed")
    return fig
