"""Predict: text → predicted label paths on the label tree, a ranked table of paths, and an icicle overview."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from app import figures
from app.common import (
    RULE_CHOICES,
    VIEW_CHOICES,
    Studio,
    clip_text,
    display_names,
    display_path,
    label_vector,
    probability_to_score,
    tree_mode,
    user_errors,
)

__all__ = ["render", "predict", "load_examples"]

PATH_HEADERS = ["rank", "predicted path", "probability", "depth"]
NAMES_HEADER = "display names"  # a fifth column, for models trained with a label-names file


def load_examples(files: dict[str, Path]) -> dict[str, str]:
    """Example texts by display name (``[20ng] alt.atheism · Well, as I remember…``)."""
    out: dict[str, str] = {}
    for tag, path in files.items():
        if not path.is_file():
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            label = item.get("label") or item.get("labels") or []
            leaf = label[-1] if label and isinstance(label[-1], str) else ""
            words = " ".join(item["text"].split()[:8])
            out[f"[{tag}] {leaf} · {words}…"] = item["text"]
    return out


def predict(
    studio: Studio, text: str, model: str, threshold: float = 0.5, rule: str = "paper", view: str = "auto"
) -> tuple[Any, dict[str, Any], str, dict[str, Any], Any]:
    """Tree figure, ranked paths table (``{"headers", "data"}``), summary markdown, JSON result, icicle figure for
    one text. A model trained with label names shows them: on the tree, in the icicle, and in a fifth table column
    (the path column keeps the label paths, which select the label in the other tabs)."""
    text, note = clip_text(text, studio.config.max_text_chars)
    predictor = studio.registry.predictor(model)
    h = predictor.hierarchy
    names, notes = display_names(studio, model)
    [pred] = predictor.predict(text, threshold=probability_to_score(threshold), rule=rule, all_scores=True)
    scores, predicted = label_vector(h, pred)
    prob = {" > ".join(s.path): s.probability for s in pred.scores}
    rows = [[k + 1, " > ".join(p), round(prob[" > ".join(p)], 4), len(p) - 1] for k, p in enumerate(pred.paths)]
    headers = list(PATH_HEADERS)
    if names:
        headers.append(NAMES_HEADER)
        for row, path in zip(rows, pred.paths):
            row.append(display_path(h, h.index(path), names))
    lines = []
    if rows:
        lines.append(
            f"**{len(rows)} predicted path{'s' if len(rows) != 1 else ''}** with **{model}** "
            f"(threshold p > {threshold:.2f})."
        )
    else:
        best = ", ".join(f"{' > '.join(s.path)} ({s.probability:.2f})" for s in pred.scores[:3])
        lines.append(
            f"**No label passes the threshold p > {threshold:.2f}.** Closest: {best}. Lower the threshold to see them."
        )
    if not pred.consistent:
        lines.append(
            "Some predicted labels have an unpredicted parent (the paper's rule scores each level on its own)."
        )
    if pred.truncated:
        lines.append("The text is longer than the model's maximum length; only its beginning was read.")
    if note:
        lines.append(note)
    mode = tree_mode(view, h.num_labels)
    title = "Predicted paths and their siblings" if mode == "paths" else "Label tree"
    threshold_score = probability_to_score(threshold)
    tree = figures.tree_figure(
        h, scores, predicted, mode=mode, threshold=threshold_score, title=title, display=names, notes=notes
    )
    icicle = figures.icicle_figure(h, scores, title="Every label, coloured by probability", display=names, notes=notes)
    result = pred.to_dict() | {"model": model, "threshold": threshold, "rule": rule}
    if names:
        result["display_names"] = [display_path(h, h.index(p), names) for p in pred.paths]
    if note:
        result["note"] = note
    return tree, {"headers": headers, "data": rows}, "\n\n".join(lines), result, icicle


def render(studio: Studio, model_picker: gr.Dropdown) -> dict[str, Any]:
    """The Predict tab's layout and events (``/predict``)."""
    examples = load_examples(studio.config.examples)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            text = gr.Textbox(
                elem_id="predict-text", label="Text to classify", lines=7, max_lines=20, placeholder="Paste a document…"
            )
            example = gr.Dropdown(
                elem_id="predict-example",
                choices=list(examples),
                value=None,
                label="Or pick an example",
                info="Real test-split texts, never seen in training.",
            )
            button = gr.Button("Classify", variant="primary", elem_id="predict-button")
        with gr.Column(scale=1):
            summary = gr.Markdown(elem_id="predict-summary")
            paths = gr.Dataframe(
                elem_id="predict-paths",
                headers=PATH_HEADERS,
                label="Predicted paths (select one to see its label words)",
                interactive=False,
                wrap=True,
                column_widths=["10%", "60%", "18%", "12%"],
            )
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold: predict labels with p above")
            with gr.Row():
                view = gr.Dropdown(choices=list(VIEW_CHOICES.items()), value="auto", label="Tree view", min_width=260)
                rule = gr.Dropdown(
                    choices=list(RULE_CHOICES.items()), value="paper", label="Consistency rule", min_width=260
                )
    tree = gr.Plot(label="Label tree", elem_id="predict-tree")
    with gr.Accordion("Overview of every label (icicle)", open=False):
        icicle = gr.Plot(label="Icicle")
    with gr.Accordion("Raw result (JSON)", open=False):
        raw = gr.JSON(label="Prediction")

    example.change(
        lambda name: examples.get(name, gr.skip()) if name else gr.skip(), example, text, api_visibility="private"
    )
    handler = user_errors(lambda *args: predict(studio, *args))
    inputs = [text, model_picker, threshold, rule, view]
    outputs = [tree, paths, summary, raw, icicle]
    button.click(handler, inputs, outputs, api_name="predict")
    text.submit(handler, inputs, outputs, api_visibility="private")

    def rerun(*args: Any) -> Any:
        """Re-classify when a setting changes, once there is text to classify."""
        if not (args[0] or "").strip():
            return [gr.skip()] * len(outputs)
        return handler(*args)

    threshold.release(rerun, inputs, outputs, api_visibility="private")
    rule.change(rerun, inputs, outputs, api_visibility="private")
    view.change(rerun, inputs, outputs, api_visibility="private")
    return {"text": text, "button": button, "tree": tree, "paths": paths, "summary": summary}
