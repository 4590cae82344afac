"""HPT Studio's Gradio app: ``build_demo()`` lays out the tabs over one shared ``Studio`` (models, jobs, config).

Thin over ``hpt_core``: handlers call the library's public API and turn its dataclasses into figures and tables;
no tensor arithmetic lives here.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from typing import Any

import gradio as gr

from .common import Studio, user_errors
from .config import AppConfig
from .jobs import lower_thread_priority
from .tabs import compare, evaluate, explorer, finetune, hierarchy, predict

__all__ = ["build_demo", "launch_options", "serve", "AppConfig", "Studio"]

log = logging.getLogger("hpt_studio")

CSS = """
.hpt-header h1 {margin-bottom: 0}
.hpt-progress {margin: 4px 0 8px 0}
footer {display: none !important}
"""

INTRO = """# HPT Studio
Hierarchical text classification with **HPT** (*Hierarchy-aware Prompt Tuning*, Wang et al., EMNLP 2022): the label
tree is injected into a masked-language-model prompt, one `[PRED]` slot per level. Classify a text and see its path
on the tree, look at what the label words learned, or fine-tune HPT on your own hierarchy."""


def _model_info(studio: Studio, name: str | None) -> str:
    if not name:
        return "No model yet: train one in the Fine-tune tab."
    config = studio.registry.model_config(name)
    metrics = studio.registry.metrics(name) or {}
    h = studio.registry.hierarchy(name)
    template = config.get("template", "?")
    method = {"hpt": "HPT", "none": "vanilla fine-tune", "hard": "hard prompt", "soft": "soft prompt"}.get(
        template, template
    )
    parts = [
        f"**{html.escape(name)}**: {method} on `{html.escape(str(config.get('backbone', '?')))}`, "
        f"{h.num_labels} labels in {h.num_levels} levels"
    ]
    test = metrics.get("test")
    if test:
        parts.append(
            f"test micro-F1 {100 * test['micro_f1']:.1f} %, macro-F1 {100 * test['macro_f1']:.1f} % "
            f"({test['n_documents']:,} documents)"
        )
    return " · ".join(parts)


def _warm_up(studio: Studio, name: str) -> None:
    """Before the page is served: load the default model and classify one example through the Predict tab's own code
    (scores, tree and icicle figures), so the first Classify a user makes is as fast as the next ones."""
    try:
        text = next(iter(predict.load_examples(studio.config.examples).values()), "A first text to warm up the model.")
        predict.predict(studio, text, name)
    except Exception:  # noqa: BLE001 - a failed warm-up only means the first request pays for it
        log.exception("warming up %s failed", name)


def _warm_up_map(studio: Studio, name: str, delay: float = 20.0) -> None:
    """A little after start-up, fit the default model's label-word map (UMAP compiles on first use, ~30 s), at the
    lowest CPU priority on Linux so that it never slows a user's request down."""
    lower_thread_priority(19)  # this thread (and the ones it starts) only; not Linux: normal priority
    try:
        if studio.registry.has_label_words(name):
            time.sleep(delay)
            studio.registry.word_map(name)
    except Exception:  # noqa: BLE001 - as above
        log.exception("fitting the label-word map of %s failed", name)


OPEN_HELP = (
    "A folder written by `hpt-studio train` or by the Fine-tune tab (unzipped), or the id of a Hub model holding such "
    "a folder. Only its safetensors and JSON files are read: no pickle, no remote code. The model joins the Model "
    "pickers of this page; a page opened later lists it too, until the app restarts."
)


def _refresh_pickers(studio: Studio, current: tuple[Any, ...]) -> list[Any]:
    """Each model picker with today's models, keeping its choice while that model still exists."""
    names = studio.registry.names()
    fallback = names[0] if names else None
    return [gr.update(choices=names, value=value if value in names else fallback) for value in current]


def _open_model(studio: Studio, source: str, others: int) -> list[Any]:
    """Open a checkpoint by folder or Hub id: selected in the page's model picker, offered by the ``others``."""
    name = studio.registry.open(source)
    gr.Info(f"Opened {name}.")
    names = studio.registry.names()
    return [gr.update(choices=names, value=name)] + [gr.update(choices=names)] * others


def _open_in_explorer(rows: Any, event: gr.SelectData) -> tuple[Any, Any]:
    """A selected predicted path opens its deepest label in the label-word explorer."""
    row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
    path = rows.iloc[int(row), 1] if hasattr(rows, "iloc") else rows[int(row)][1]
    return gr.update(value=path), gr.Tabs(selected="explorer")


def build_demo(config: AppConfig | None = None, studio: Studio | None = None) -> gr.Blocks:
    """The whole app. Pass ``config`` (or a ready ``studio``) to point it at other models and folders (tests do)."""
    studio = studio or Studio.create(config)
    names = studio.registry.names()
    default = names[0] if names else None
    if default:
        _warm_up(studio, default)
        threading.Thread(target=_warm_up_map, args=(studio, default), daemon=True, name="warm-up-map").start()

    # Gradio's own upload cache: files older than an hour are deleted every hour, so disk use stays bounded
    with gr.Blocks(title="HPT Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO, elem_classes="hpt-header")
        with gr.Row():
            model_picker = gr.Dropdown(
                names, value=default, label="Model", scale=2, elem_id="model-picker", allow_custom_value=True
            )
            model_info = gr.Markdown(_model_info(studio, default))
        with gr.Accordion("Open another model (a checkpoint folder or a Hugging Face Hub id)", open=False):
            with gr.Row():
                open_source = gr.Textbox(
                    label="Checkpoint folder or Hub id",
                    placeholder="runs/my-model  or  owner/name",
                    scale=4,
                    elem_id="open-model",
                )
                open_button = gr.Button("Open", scale=1)
            gr.Markdown(OPEN_HELP)
        with gr.Tabs() as tabs:
            with gr.Tab("Predict", id="predict"):
                pred = predict.render(studio, model_picker)
            with gr.Tab("Label words", id="explorer"):
                exp = explorer.render(studio, model_picker)
            with gr.Tab("Fine-tune", id="finetune"):
                ft = finetune.render(studio)
            with gr.Tab("Hierarchy", id="hierarchy"):
                hierarchy.render(studio, model_picker, ft, exp["label"], tabs, "explorer")
            with gr.Tab("Compare", id="compare"):
                cmp = compare.render(studio)
            with gr.Tab("Evaluate", id="evaluate"):
                ev = evaluate.render(studio, model_picker)
        finetune.wire_training(studio, ft, [model_picker, *cmp["pickers"]], demo)
        pred["paths"].select(_open_in_explorer, pred["paths"], [exp["label"], tabs], api_visibility="private")
        model_picker.change(
            user_errors(lambda n: _model_info(studio, n)), model_picker, model_info, api_visibility="private"
        )
        demo.load(ev["load"], model_picker, ev["outputs"], api_visibility="private")
        # every page load lists the models there are now (one trained or opened since start-up included)
        pickers = [model_picker, *cmp["pickers"]]
        demo.load(lambda *v: _refresh_pickers(studio, v), pickers, pickers, api_visibility="private")
        opening = user_errors(lambda source: _open_model(studio, source, len(pickers) - 1))
        open_source.submit(opening, open_source, pickers, api_name="open_model")
        open_button.click(opening, open_source, pickers, api_visibility="private")
    return demo


def launch_options(config: AppConfig) -> dict[str, Any]:
    """Keyword arguments of ``demo.launch`` (theme and CSS go to launch in Gradio 6)."""
    return {
        "theme": gr.themes.Soft(primary_hue="blue"),
        "css": CSS,
        "max_file_size": f"{config.max_upload_mb}mb",
        "allowed_paths": [str(config.user_dir / ".downloads")],
        "ssr_mode": False,
    }


from .serve import serve  # noqa: E402  (after build_demo and launch_options, which serve imports lazily)
