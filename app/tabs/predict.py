"""Predict: text → predicted label paths on the label tree, a ranked table of paths, and an icicle overview; and
"Classify a file": a CSV/TSV/JSONL/TXT upload → a table of predictions and CSV/JSONL downloads
(``hpt_core.batch_predict``)."""

from __future__ import annotations

import html
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from hpt_core import batch_predict
from hpt_core.errors import HPTError

from .. import figures
from ..common import (
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
from .finetune import _check_size  # the upload size limit, one check for every tab

__all__ = ["render", "predict", "load_examples", "examples_for", "classify_file", "FILE_HEADERS", "FILE_TYPES"]

PATH_HEADERS = ["rank", "predicted path", "probability", "depth"]
NAMES_HEADER = "display names"  # a fifth column, for models trained with a label-names file
FILE_HEADERS = ["id", "text", "predicted paths", "probabilities"]
FILE_TYPES = [".csv", ".tsv", ".jsonl", ".json", ".txt", ".gz"]
PROBLEM_HEADERS = ["#", "problem"]
MAX_ROWS_SHOWN = 1_000  # rows of the results table; the downloads hold every row
MAX_PROBLEMS_SHOWN = 200
KEEP_RESULTS_SECONDS = 3600  # result files older than this are deleted at the next run (and all at start-up)
FILE_HELP = (
    "**Classify a file**: CSV or TSV with a `text` column (and optionally `id`), JSONL with `text` (and optionally "
    "`id`) per line, or TXT with one text per line (the id is the line number); optionally `.gz`. Uses the model, "
    "threshold, rule and best-path option above. Results: a table of the first {rows:,} rows and CSV and JSONL "
    "downloads of every row (id, text_preview, paths, probabilities, truncated, display_names, below_threshold). At "
    "most {mb} MB and {docs:,} texts."
)


def _example_items(files: dict[str, Path]) -> list[tuple[str, str, list[str]]]:
    """(display name, text, gold path) of every example (``[20ng] alt.atheism · Well, as I remember…``)."""
    out = []
    for tag, path in files.items():
        if not path.is_file():
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            label = item.get("label") or item.get("labels") or []
            gold = [x for x in label if isinstance(x, str)]
            leaf = gold[-1] if gold else ""
            words = " ".join(item["text"].split()[:8])
            out.append((f"[{tag}] {leaf} · {words}…", item["text"], gold))
    return out


def load_examples(files: dict[str, Path]) -> dict[str, str]:
    """Example texts by display name (``[20ng] alt.atheism · Well, as I remember…``)."""
    return {name: text for name, text, _ in _example_items(files)}


def examples_for(studio: Studio, model: str | None) -> list[str]:
    """The names of the examples whose gold path is in ``model``'s label tree (so a 20 Newsgroups model is offered
    newsgroup messages, not WOS abstracts); every example when the model cannot be read."""
    items = _example_items(studio.config.examples)
    if not model:
        return [name for name, _, _ in items]
    try:
        h = studio.registry.hierarchy(model)
    except HPTError:
        return [name for name, _, _ in items]
    fitting = []
    for name, _, gold in items:
        try:
            h.index(gold)
        except HPTError:
            continue
        fitting.append(name)
    return fitting


EMPTY_TEXT = "The text is empty: paste a document or pick an example."


def predict(
    studio: Studio,
    text: str,
    model: str,
    threshold: float = 0.5,
    rule: str = "paper",
    view: str = "auto",
    best: bool = True,
) -> tuple[Any, dict[str, Any], str, dict[str, Any], Any]:
    """Tree figure, ranked paths table (``{"headers", "data"}``), summary markdown, JSON result, icicle figure for
    one text. A model trained with label names shows them: on the tree, in the icicle, and in a fifth table column
    (the path column keeps the label paths, which select the label in the other tabs). With ``best``, a text with no
    label above the threshold shows the model's best path, marked as below it."""
    text, note = clip_text(text, studio.config.max_text_chars)
    predictor = studio.registry.predictor(model)
    h = predictor.hierarchy
    names, notes = display_names(studio, model)
    [pred] = predictor.predict(
        text, threshold=probability_to_score(threshold), rule=rule, all_scores=True, best=bool(best)
    )
    scores, predicted = label_vector(h, pred)
    prob = {" > ".join(s.path): s.probability for s in pred.scores}
    rows = [[k + 1, " > ".join(p), round(prob[" > ".join(p)], 4), len(p) - 1] for k, p in enumerate(pred.paths)]
    headers = list(PATH_HEADERS)
    if names:
        headers.append(NAMES_HEADER)
        for row, path in zip(rows, pred.paths):
            row.append(display_path(h, h.index(path), names))
    lines = []
    if pred.below_threshold:
        lines.append(
            f"**No label passes the threshold p > {threshold:.2f}**: shown is **{model}**'s best path, "
            f"{' > '.join(pred.paths[0])}, **below the threshold** (a guess; lower the threshold or untick "
            '"Always show the best path" to hide it).'
        )
    elif rows:
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
    if pred.below_threshold:
        title = "The best path, below the threshold" + (" (and its siblings)" if mode == "paths" else "")
    threshold_score = probability_to_score(threshold)
    tree = figures.tree_figure(
        h, scores, predicted, mode=mode, threshold=threshold_score, title=title, display=names, notes=notes
    )
    icicle = figures.icicle_figure(h, scores, title="Every label, coloured by probability", display=names, notes=notes)
    result = pred.to_dict() | {"model": model, "threshold": threshold, "rule": rule, "best_path": bool(best)}
    if names:
        result["display_names"] = [display_path(h, h.index(p), names) for p in pred.paths]
    if note:
        result["note"] = note
    return tree, {"headers": headers, "data": rows}, "\n\n".join(lines), result, icicle


def _results_folder(studio: Studio) -> Path:
    """A fresh folder for one run's downloads (in the app's cleaned-at-start-up downloads folder); older runs' folders
    are removed."""
    root = studio.config.user_dir / ".downloads" / "predictions"
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        if old.is_dir() and now - old.stat().st_mtime > KEEP_RESULTS_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder


def _problems_view(name: str, problems: list[str], found: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    summary = (
        f"### {html.escape(name)}\n\n**{found} problem{'s' if found != 1 else ''} found; nothing was classified.** "
        "Each line says where and how to fix it."
    )
    if found > len(problems):
        summary += f" The first {len(problems)} are listed."
    rows = [[k + 1, p] for k, p in enumerate(problems)]
    return summary, {"headers": PROBLEM_HEADERS, "data": rows}, {"ok": False, "source": name, "problems_found": found}


def classify_file(
    studio: Studio,
    file: str | None,
    model: str,
    threshold: float = 0.5,
    rule: str = "paper",
    progress: Any = None,
    best: bool = True,
) -> tuple[str, dict[str, Any], dict[str, Any], list[str], dict[str, Any]]:
    """Summary markdown, results table (first ``MAX_ROWS_SHOWN`` rows, paths in the model's display names), problems
    table, the CSV and JSONL files and a JSON summary (``ok``) for an uploaded file of texts. A file with problems
    (each ``name:line: field: what to fix``) is not classified: the problems table lists them. ``progress(done,
    total)`` follows the texts; ``best``: a text with no label above the threshold gets its best path, marked."""
    if not file:
        raise HPTError(
            "Upload a file of texts first: CSV or TSV with a text column, JSONL with a text field per line, or TXT "
            "with one text per line."
        )
    path = Path(file)
    name = path.name
    cfg = studio.config
    _check_size(path, name, cfg.max_upload_mb)
    check = batch_predict.check_file(path, source=name, max_problems=MAX_PROBLEMS_SHOWN)
    problems, found = list(check.problems), check.problems_found
    if check.n_texts > cfg.max_documents:
        problems.append(
            f"{name}: {check.n_texts:,} texts is over this app's limit of {cfg.max_documents:,}; use a sample."
        )
        found += 1
    empty = {"headers": FILE_HEADERS, "data": []}
    if found:
        summary, table, result = _problems_view(name, problems, found)
        return summary, empty, table, [], result
    predictor = studio.registry.predictor(model)
    folder = _results_folder(studio)
    stem = Path(name[:-3] if name.lower().endswith(".gz") else name).stem.lstrip(".") or "texts"
    outputs = [folder / f"{stem}-predictions.csv", folder / f"{stem}-predictions.jsonl"]
    done = batch_predict.classify_file(
        predictor,
        path,
        outputs,
        source=name,
        threshold=probability_to_score(threshold),
        rule=rule,
        progress=progress,
        keep=MAX_ROWS_SHOWN,
        best=best,
    )
    rows = [
        [
            row.id,
            row.text_preview,
            "; ".join(" > ".join(p) for p in row.shown_paths),
            "; ".join(f"{p:.4f}" for p in row.probabilities)
            + (" (below the threshold)" if row.below_threshold else ""),
        ]
        for row in done.first_rows
    ]
    esc = html.escape
    lines = [
        f"### {esc(name)}",
        f"**{done.n_texts:,} text{'s' if done.n_texts != 1 else ''} classified** with **{esc(model)}** (threshold "
        f"p > {threshold:.2f}, {esc(rule)} rule) in {done.seconds:.1f} s.",
    ]
    if done.top_labels:
        tops = ", ".join(f"{esc(label)} ({n:,})" for label, n in list(done.top_labels.items())[:5])
        lines.append(f"Top-level labels predicted most: {tops}.")
    if done.n_without_label and best:
        lines.append(
            f"{done.n_without_label:,} text(s) have no label above the threshold: they show the model's best path, "
            "marked (below the threshold) in the table and below_threshold in the downloads."
        )
    elif done.n_without_label:
        lines.append(f"{done.n_without_label:,} text(s) have no label above the threshold; lower it to see more.")
    if done.n_truncated:
        lines.append(f"{done.n_truncated:,} text(s) are longer than the model reads; only their beginning was used.")
    if done.n_texts > len(rows):
        lines.append(f"The table shows the first {len(rows):,} rows; the downloads hold all {done.n_texts:,}.")
    result = {
        "ok": True,
        "source": name,
        "model": model,
        "threshold": threshold,
        "rule": rule,
        "best_path": bool(best),
        "n_texts": done.n_texts,
        "n_without_label": done.n_without_label,
        "n_truncated": done.n_truncated,
        "top_labels": done.top_labels,
        "columns": list(batch_predict.OUTPUT_COLUMNS),
    }
    no_problems = {"headers": PROBLEM_HEADERS, "data": []}
    return "\n\n".join(lines), {"headers": FILE_HEADERS, "data": rows}, no_problems, [str(p) for p in outputs], result


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
                choices=examples_for(studio, model_picker.value),
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
            threshold = gr.Slider(
                0.05, 0.95, value=0.5, step=0.05, label="Threshold: predict labels with p above", elem_id="predict-p"
            )
            best = gr.Checkbox(
                value=True,
                label="Always show the best path",
                info="When no label passes the threshold, show the model's best path, marked as below it.",
                elem_id="predict-best",
            )
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
    cfg = studio.config
    with gr.Accordion("Classify a file", open=False, elem_id="predict-file-section"):
        gr.Markdown(FILE_HELP.format(rows=MAX_ROWS_SHOWN, mb=cfg.max_upload_mb, docs=cfg.max_documents))
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                texts_file = gr.File(
                    elem_id="predict-file", label="File of texts", file_types=FILE_TYPES, type="filepath"
                )
                file_button = gr.Button("Classify the file", variant="primary", elem_id="predict-file-button")
            with gr.Column(scale=2):
                file_summary = gr.Markdown(elem_id="predict-file-summary")
                file_problems = gr.Dataframe(
                    elem_id="predict-file-problems",
                    headers=PROBLEM_HEADERS,
                    label="Problems (file:line: field: what to fix)",
                    interactive=False,
                    wrap=True,
                    max_height=300,
                    visible=False,
                )
                downloads = gr.File(
                    elem_id="predict-file-downloads",
                    label="Download the predictions (CSV and JSONL)",
                    file_count="multiple",
                    interactive=False,
                    visible=False,
                )
        file_results = gr.Dataframe(
            elem_id="predict-file-results",
            headers=FILE_HEADERS,
            label="Predictions",
            interactive=False,
            wrap=True,
            max_height=500,
            column_widths=["10%", "50%", "28%", "12%"],
        )
        file_json = gr.JSON(visible=False)

    handler = user_errors(lambda *args: predict(studio, *args))
    inputs = [text, model_picker, threshold, rule, view, best]
    outputs = [tree, paths, summary, raw, icicle]
    # The API endpoint raises on an empty text (a client gets the error); the page clears the old result instead
    # and says so once, in the summary, rather than marking every output as failed.
    api_trigger = gr.Button(visible=False)
    api_trigger.click(handler, inputs, outputs, api_name="predict")

    def on_page(*args: Any) -> Any:
        if not (args[0] or "").strip():
            return [None, {"headers": PATH_HEADERS, "data": []}, f"**{EMPTY_TEXT}**", None, None]
        return handler(*args)

    def rerun(*args: Any) -> Any:
        """Re-classify when a setting changes, once there is text to classify."""
        if not (args[0] or "").strip():
            return [gr.skip()] * len(outputs)
        return handler(*args)

    button.click(on_page, inputs, outputs, api_visibility="private")
    text.submit(on_page, inputs, outputs, api_visibility="private")
    example.input(  # picking an example classifies it at once
        lambda name: examples.get(name, gr.skip()) if name else gr.skip(), example, text, api_visibility="private"
    ).then(rerun, inputs, outputs, api_visibility="private")
    model_picker.change(  # the examples follow the selected model's label tree
        lambda name: gr.update(choices=examples_for(studio, name), value=None),
        model_picker,
        example,
        api_visibility="private",
    )

    def on_classify_file(
        file: str | None,
        name: str,
        p: float,
        how: str,
        always_best: bool = True,
        progress=gr.Progress(),  # noqa: B008
    ) -> list[Any]:
        def follow(done: int, total: int) -> None:
            progress((done, total), desc="Classifying the file", unit="texts")

        summary, table, problems, files, result = classify_file(studio, file, name, p, how, follow, always_best)
        return [summary, table, problems, files or None, result]

    file_button.click(
        user_errors(on_classify_file),
        [texts_file, model_picker, threshold, rule, best],
        [file_summary, file_results, file_problems, downloads, file_json],
        api_name="classify_file",
    ).then(  # the problems table or the downloads, whichever there is (as the Fine-tune tab's report)
        lambda r: [gr.update(visible=bool(r) and not r.get("ok", True)), gr.update(visible=bool(r) and r.get("ok"))],
        file_json,
        [file_problems, downloads],
        api_visibility="private",
    )
    # a dragged or typed threshold (Enter or leaving the box) re-runs; "always_last" skips the values passed over
    threshold.change(rerun, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    rule.change(rerun, inputs, outputs, api_visibility="private")
    view.change(rerun, inputs, outputs, api_visibility="private")
    best.change(rerun, inputs, outputs, api_visibility="private")
    return {
        "text": text,
        "button": button,
        "tree": tree,
        "paths": paths,
        "summary": summary,
        "file": texts_file,
        "file_button": file_button,
        "file_results": file_results,
    }
