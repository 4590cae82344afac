"""Compare: the same text through two models (HPT and the fine-tune baseline by default), differences highlighted."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .. import figures
from ..common import Studio, clip_text, display_names, label_vector, probability_to_score, tree_mode, user_errors
from .predict import load_examples

__all__ = ["render", "compare", "DIFF_HEADERS"]

DIFF_HEADERS = ["label path", "probability (A)", "probability (B)", "predicted by", "display name"]


def _run(studio: Studio, model: str, text: str, threshold: float) -> tuple[Any, list[float], list[int]]:
    predictor = studio.registry.predictor(model)
    h = predictor.hierarchy
    [pred] = predictor.predict(text, threshold=probability_to_score(threshold), all_scores=True)
    return (h, *label_vector(h, pred))


def compare(
    studio: Studio, text: str, model_a: str, model_b: str, threshold: float = 0.5
) -> tuple[Any, Any, list[list[Any]], str]:
    """Two trees (labels predicted by one model only marked) and a table of the labels either model predicts."""
    text, note = clip_text(text, studio.config.max_text_chars)
    h_a, s_a, p_a = _run(studio, model_a, text, threshold)
    h_b, s_b, p_b = _run(studio, model_b, text, threshold)
    same_tree = h_a.to_dict() == h_b.to_dict()
    only_a = set(p_a) - set(p_b) if same_tree else set()
    only_b = set(p_b) - set(p_a) if same_tree else set()
    mode = tree_mode("auto", h_a.num_labels)
    names_a, notes_a = display_names(studio, model_a)
    names_b, notes_b = display_names(studio, model_b)
    tree_a = figures.tree_figure(
        h_a, s_a, p_a, differs=only_a, mode=mode, title=f"A: {model_a}", display=names_a, notes=notes_a
    )
    tree_b = figures.tree_figure(
        h_b, s_b, p_b, differs=only_b, mode=mode, title=f"B: {model_b}", display=names_b, notes=notes_b
    )
    names = names_a or names_b  # the table's display names: model A's, else model B's (same tree)
    rows: list[list[Any]] = []
    if same_tree:
        for i in sorted(set(p_a) | set(p_b), key=lambda i: (h_a.depth(i), -max(s_a[i], s_b[i]))):
            by = "both" if i in p_a and i in p_b else ("A only" if i in p_a else "B only")
            p_of = (round(figures.sigmoid(s_a[i]), 4), round(figures.sigmoid(s_b[i]), 4))
            rows.append([h_a.path_string(i), *p_of, by, names.get(i, "")])
        agree = "agree on every label" if not (only_a or only_b) else f"differ on {len(only_a) + len(only_b)} label(s)"
        summary = (
            f"The two models {agree} (threshold p > {threshold:.2f}). Diamonds mark labels only that model predicts."
        )
    else:
        summary = "The two models use different label trees, so only their trees are shown side by side."
    if note:
        summary += "\n\n" + note
    return tree_a, tree_b, rows, summary


def render(studio: Studio) -> dict[str, Any]:
    """The compare tab's layout and events (``/compare``)."""
    names = studio.registry.names()
    examples = load_examples(studio.config.examples)
    with gr.Row():
        text = gr.Textbox(label="Text", lines=5, scale=3)
        with gr.Column(scale=2):
            example = gr.Dropdown(list(examples), value=None, label="Or pick an example")
            threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold (probability)")
    with gr.Row():
        model_a = gr.Dropdown(names, value=names[0] if names else None, label="Model A", allow_custom_value=True)
        model_b = gr.Dropdown(
            names, value=names[1] if len(names) > 1 else None, label="Model B", allow_custom_value=True
        )
        button = gr.Button("Compare", variant="primary")
    summary = gr.Markdown()
    diff = gr.Dataframe(headers=DIFF_HEADERS, label="Labels predicted by either model", interactive=False)
    with gr.Row():
        tree_a = gr.Plot(label="Model A")
        tree_b = gr.Plot(label="Model B")
    example.change(
        lambda name: examples.get(name, gr.skip()) if name else gr.skip(), example, text, api_visibility="private"
    )
    handler = user_errors(lambda t, a, b, thr: compare(studio, t, a, b, thr))
    button.click(handler, [text, model_a, model_b, threshold], [tree_a, tree_b, diff, summary], api_name="compare")
    return {"text": text, "model_a": model_a, "model_b": model_b, "button": button, "pickers": [model_a, model_b]}
