"""Evaluate: the selected model's metrics (``metrics.json``), per-depth bars, and the test documents it gets wrong,
each shown on the tree (gold vs predicted)."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from hpt_core.data import load_dataset
from hpt_core.errors import HPTError
from hpt_core.metrics import top_level_confusion

from .. import figures
from ..common import Studio, display_names, display_path, probability_to_score, tree_mode, user_errors

__all__ = ["render", "metrics_view", "find_mistakes", "mistake_tree", "MISTAKE_HEADERS"]

MISTAKE_HEADERS = ["#", "text", "gold", "predicted"]
HIERARCHICAL_NOTE = (
    "Hierarchical P / R / F1 count each document's gold and predicted labels together with all their ancestors, so "
    "a wrong leaf in the right branch still earns credit for the shared parents (– where `metrics.json` predates them)."
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def metrics_view(studio: Studio, model: str) -> tuple[str, Any, Any]:
    """Markdown summary, per-depth bars and top-level confusion of the model's saved metrics."""
    metrics = studio.registry.metrics(model) or {}
    config = studio.registry.train_config(model)
    lines = [f"### {html.escape(model)}"]
    if not metrics:
        lines.append("This model has no saved metrics (`metrics.json`).")
        return "\n\n".join(lines), None, None
    rows = [
        "| split | documents | micro-F1 | macro-F1 | hierarchical F1 | hierarchical P / R | path consistency |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("dev", "test", "test_slice_200"):
        m = metrics.get(split)
        if m:
            rows.append(
                f"| {split} | {m.get('n_documents', '–')} | {_pct(m.get('micro_f1'))} | {_pct(m.get('macro_f1'))} | "
                f"{_pct(m.get('hierarchical_f1'))} | {_pct(m.get('hierarchical_precision'))} / "
                f"{_pct(m.get('hierarchical_recall'))} | {_pct(m.get('path_consistency'))} |"
            )
    lines.append("\n".join(rows))
    lines.append(HIERARCHICAL_NOTE)
    training = metrics.get("training", {})
    facts = []
    if config.get("variant"):
        facts.append(f"method **{html.escape(str(config['variant']))}**")
    if training.get("steps"):
        facts.append(f"{training['steps']} steps (best at {training.get('best_step', '–')})")
    if training.get("seconds"):
        facts.append(f"{training['seconds']:.0f} s on {html.escape(str(training.get('device', '?')))}")
    if training.get("train_documents"):
        facts.append(f"{training['train_documents']:,} training documents")
    if facts:
        lines.append("Training: " + ", ".join(facts) + ".")
    test = metrics.get("test") or metrics.get("dev") or {}
    depth = figures.per_depth_figure({"test" if "test" in metrics else "dev": test["per_depth"]}) if test else None
    confusion = None
    conf = test.get("top_level_confusion")
    if not conf:
        lines.append("The top-level confusion appears when you look for the test documents it gets wrong (below).")
    else:
        confusion = figures.confusion_figure(
            conf["labels"][: len(conf["matrix"])], conf["matrix"], columns=conf["labels"]
        )
    return "\n\n".join(lines), depth, confusion


def find_mistakes(
    studio: Studio, model: str, threshold: float = 0.5
) -> tuple[str, list[list[Any]], list[dict[str, Any]], Any]:
    """Score the model's evaluation documents: a summary, the table of mistakes, their details (for the tree) and
    the top-level confusion of these documents."""
    path = studio.registry.eval_file(model)
    if path is None:
        raise HPTError(f"{model} has no evaluation documents saved beside it; models fine-tuned in this app do.")
    predictor = studio.registry.predictor(model)
    dataset = load_dataset(path, hierarchy=predictor.hierarchy)
    limit = studio.config.eval_limit
    if len(dataset) > limit:
        dataset = dataset.subset(dataset.documents[:limit])
    report, mistakes = predictor.evaluate(dataset, threshold=probability_to_score(threshold))
    summary = (
        f"**{len(mistakes)} of {report.n_documents} documents** have a predicted label set different from the gold one "
        f"(micro-F1 {_pct(report.micro_f1)}, macro-F1 {_pct(report.macro_f1)}, hierarchical F1 "
        f"{_pct(report.hierarchical_f1)} on these documents of `{path.name}`). "
        "Select a row to see it on the tree."
    )
    h = predictor.hierarchy
    names, _ = display_names(studio, model)

    def shown(paths: list[list[str]]) -> str:  # in the model's display names, when it has them
        return "; ".join(display_path(h, h.index(p), names) for p in paths)

    rows = [
        [
            k + 1,
            " ".join(m.text.split())[:160] + ("…" if len(m.text) > 160 else ""),
            shown(m.gold_paths),
            shown(m.predicted_paths) or "(nothing)",
        ]
        for k, m in enumerate(mistakes)
    ]
    details = [{"gold": m.gold, "predicted": m.predicted, "scores": m.scores} for m in mistakes]
    by_text = {m.text: m.predicted for m in mistakes}
    gold = [d.labels for d in dataset.documents]
    predicted = [by_text.get(d.text, h.closure(d.labels)) for d in dataset.documents]  # right ones: predicted = gold
    labels, matrix = top_level_confusion(gold, predicted, h)
    confusion = figures.confusion_figure(
        labels[: len(matrix)],
        matrix,
        title=f"Top-level confusion on these {report.n_documents} documents",
        columns=labels,
    )
    return summary, rows, details, confusion


def mistake_tree(studio: Studio, model: str, details: list[dict[str, Any]], index: int) -> Any:
    h = studio.registry.hierarchy(model)
    names, notes = display_names(studio, model)
    item = details[index]
    mode = tree_mode("auto", h.num_labels)
    return figures.tree_figure(
        h,
        item["scores"],
        item["predicted"],
        gold=item["gold"],
        mode=mode,
        title=f"Mistake {index + 1}: gold vs predicted",
        display=names,
        notes=notes,
    )


def render(studio: Studio, model_picker: gr.Dropdown) -> dict[str, Any]:
    """The evaluate tab's layout and events (``/metrics``, ``/mistakes``)."""
    summary = gr.Markdown()
    with gr.Row():
        depth_plot = gr.Plot(label="F1 per depth")
        confusion_plot = gr.Plot(label="Top-level confusion")
    with gr.Row():
        threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Threshold (probability)")
        button = gr.Button("Find the test documents it gets wrong", variant="primary")
    mistakes_md = gr.Markdown()
    table = gr.Dataframe(
        headers=MISTAKE_HEADERS,
        label="Mistakes",
        interactive=False,
        wrap=True,
        max_height=420,
        column_widths=["6%", "54%", "20%", "20%"],
    )
    tree = gr.Plot(label="Gold vs predicted")
    details = gr.State([])

    metrics_handler = user_errors(lambda m: metrics_view(studio, m))
    model_picker.change(metrics_handler, model_picker, [summary, depth_plot, confusion_plot], api_name="metrics")
    button.click(
        user_errors(lambda m, t: find_mistakes(studio, m, t)),
        [model_picker, threshold],
        [mistakes_md, table, details, confusion_plot],
        api_name="mistakes",
    )

    def on_select(model: str, items: list[dict[str, Any]], event: gr.SelectData) -> Any:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return mistake_tree(studio, model, items, int(row))

    table.select(user_errors(on_select), [model_picker, details], tree, api_visibility="private")
    return {
        "summary": summary,
        "depth": depth_plot,
        "button": button,
        "table": table,
        "tree": tree,
        "load": metrics_handler,
        "outputs": [summary, depth_plot, confusion_plot],
    }
