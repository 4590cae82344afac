"""Hierarchy explorer: the whole label tree of the selected model or of an uploaded dataset, with training-document
counts, label search and an icicle overview (click a block to zoom in, the top bar to zoom out). Selecting a row
opens the label in the label-word explorer."""

from __future__ import annotations

from typing import Any

import gradio as gr

from hpt_core.data import load_dataset
from hpt_core.errors import HPTError
from hpt_core.hierarchy import LabelHierarchy

from .. import figures
from ..common import Studio, display_names, user_errors
from .finetune import _check_size, _inputs

__all__ = ["render", "hierarchy_view", "HIERARCHY_HEADERS", "MODEL", "DATASET"]

HIERARCHY_HEADERS = ["label path", "depth", "children", "training documents", "display name"]
MODEL = "Selected model"
DATASET = "Dataset of the Fine-tune tab"


def _from_dataset(
    studio: Studio, source: str, data_file: str | None, hierarchy_file: str | None
) -> tuple[LabelHierarchy, list[int], str]:
    data, name, hierarchy = _inputs(studio, source, data_file, hierarchy_file)
    _check_size(data, name, studio.config.max_upload_mb)
    try:
        dataset = load_dataset(data, hierarchy_file=hierarchy)
    except HPTError as e:
        raise HPTError(str(e).replace(str(data), name) + " (the Fine-tune tab's Validate lists every problem)") from e
    return dataset.hierarchy, dataset.label_counts(), name


def hierarchy_view(
    studio: Studio,
    what: str,
    model: str,
    query: str = "",
    source: str = "",
    data_file: str | None = None,
    hierarchy_file: str | None = None,
) -> tuple[Any, list[list[Any]], str, Any]:
    """Icicle, table of labels (filtered by ``query``), summary, and the whole tree."""
    names: dict[int, str] = {}
    notes: dict[int, str] = {}
    if what == DATASET:
        h, counts, name = _from_dataset(studio, source, data_file, hierarchy_file)
        counted: list[int] | None = counts
    else:
        h, name = studio.registry.hierarchy(model), model
        names, notes = display_names(studio, model)
        by_path = ((studio.registry.metrics(model) or {}).get("training") or {}).get("label_counts") or {}
        counted = [int(by_path.get(h.path_string(i), 0)) for i in range(h.num_labels)] if by_path else None
    needle = (query or "").strip().lower()
    rows = [  # the search matches the path or the display name
        [h.path_string(i), h.depth(i), len(h.children(i)), counted[i] if counted is not None else "–", names.get(i, "")]
        for i in range(h.num_labels)
        if not needle or needle in h.path_string(i).lower() or needle in names.get(i, "").lower()
    ]
    summary = (
        f"**{name}**: {h.num_labels} labels in {h.num_levels} levels ("
        + ", ".join(f"depth {d}: {n}" for d, n in enumerate(h.level_sizes()))
        + ")."
    )
    if counted is None:
        summary += " This model's metrics carry no training-document counts."
    if needle:
        summary += f" {len(rows)} label(s) match {query.strip()!r}."
    icicle = figures.icicle_figure(
        h, counts=counted, title="Click a block to zoom in, the top bar to zoom out", display=names, notes=notes
    )
    tree = figures.tree_figure(h, mode="full", title="The whole tree", display=names, notes=notes)
    return icicle, rows, summary, tree


def render(
    studio: Studio,
    model_picker: gr.Dropdown,
    finetune: dict[str, Any],
    explorer_label: gr.Dropdown,
    tabs: gr.Tabs,
    explorer_tab: str,
) -> dict[str, Any]:
    """The hierarchy tab's layout and events (``/hierarchy``)."""
    with gr.Row():
        what = gr.Radio([MODEL, DATASET], value=MODEL, label="Show the tree of")
        query = gr.Textbox(label="Search labels", placeholder="e.g. graphics", scale=2)
        button = gr.Button("Show", variant="primary")
    summary = gr.Markdown()
    icicle = gr.Plot(label="Overview (icicle)")
    table = gr.Dataframe(
        headers=HIERARCHY_HEADERS,
        label="Labels (select one to open it in the label-word explorer)",
        interactive=False,
        max_height=420,
    )
    with gr.Accordion("The whole tree", open=False):
        tree = gr.Plot(label="Tree")
    inputs = [what, model_picker, query, finetune["source"], finetune["data_file"], finetune["hierarchy_file"]]
    outputs = [icicle, table, summary, tree]
    handler = user_errors(lambda *args: hierarchy_view(studio, *args))
    button.click(handler, inputs, outputs, api_name="hierarchy")
    query.submit(handler, inputs, outputs, api_visibility="private")

    def open_label(what_value: str, rows: Any, event: gr.SelectData) -> Any:
        if what_value != MODEL:
            gr.Info(
                "Label words belong to a trained model: switch to 'Selected model' to open a label in the explorer."
            )
            return gr.skip(), gr.skip()
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        path = rows.iloc[int(row), 0] if hasattr(rows, "iloc") else rows[int(row)][0]
        return gr.update(value=path), gr.Tabs(selected=explorer_tab)

    table.select(open_label, [what, table], [explorer_label, tabs], api_visibility="private")
    return {
        "what": what,
        "query": query,
        "button": button,
        "table": table,
        "handler": handler,
        "inputs": inputs,
        "outputs": outputs,
    }
