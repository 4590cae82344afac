"""Label-word explorer: a label's nearest vocabulary words before and after training, how far its label word moved
from its initialisation, and a map of all label words."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from hpt_core.errors import HPTError
from hpt_core.explain import INIT_BACKBONE, LabelMovement

from .. import figures
from ..common import Studio, display_names, display_path, user_errors

__all__ = ["render", "explain", "movement_line", "word_map_figure", "label_choices"]

WORD_HEADERS = ["#", "after training", "cosine", "as initialised", "cosine (init)"]


def label_choices(studio: Studio, model: str) -> list[str | tuple[str, str]]:
    """The label picker's choices: label paths, each shown with its display names when the model has them
    (``("comp > comp.graphics · computers > graphics", "comp > comp.graphics")``); the value is always the path."""
    h = studio.registry.hierarchy(model)
    names, _ = display_names(studio, model)
    if not names:
        return [h.path_string(i) for i in range(h.num_labels)]
    return [(f"{h.path_string(i)} · {display_path(h, i, names)}", h.path_string(i)) for i in range(h.num_labels)]


def _choice_value(choice: str | tuple[str, str]) -> str:
    return choice[1] if isinstance(choice, tuple) else choice


def _label_id(studio: Studio, model: str, label: str) -> int:
    if not label:
        raise HPTError("Pick a label first (type to search the list).")
    return studio.registry.hierarchy(model).index(label)


def _listed(words: list[str], mark: str) -> str:
    return ", ".join(f"{mark}{w}{mark}" for w in words) if words else "none"


def movement_line(item: LabelMovement, top_k: int) -> str:
    """One Markdown line on how far a label word moved: its cosine to its initialisation and the words that came into
    (bold) and left (struck through) its top-k."""
    if not item.changed:
        change = f"the same top-{top_k} words as initialised"
    else:
        change = f"gained: {_listed(item.gained, '**')}; lost: {_listed(item.lost, '~~')}"
    return f"**Moved:** cosine {item.cosine_to_init:.3f} to its initialisation; {change}."


def explain(studio: Studio, model: str, label: str, top_k: int = 10) -> tuple[list[list[Any]], str]:
    """Nearest words table (after and before training) and a few sentences about the label and how it moved."""
    label_id = _label_id(studio, model, label)
    top_k = int(top_k)
    if not studio.registry.has_label_words(model):
        raise HPTError(f"{model} is a plain fine-tune classifier: it has no label words to explain. Pick an HPT model.")
    movement = studio.registry.movement(model, top_k)
    item = movement.labels[label_id]
    after, before = item.after, item.before
    rows = [
        [k + 1, w_after, round(s_after, 3), w_before, round(s_before, 3)]
        for k, ((w_after, s_after), (w_before, s_before)) in enumerate(zip(after.words, before.words))
    ]
    source = (
        "the mean embedding of the label name's word pieces in the backbone it was trained from"
        if movement.init_source == INIT_BACKBONE
        else "the mean embedding of the label name's word pieces, rebuilt from the model's current embeddings (the "
        "backbone it was trained from cannot be used here)"
    )
    names, notes = display_names(studio, model)
    shown = ""
    if label_id in names:
        h = studio.registry.hierarchy(model)
        shown = f" Shown as *{html.escape(display_path(h, label_id, names))}*"
        shown += f": {html.escape(notes[label_id])}." if label_id in notes else "."
    text = (
        f"**{' > '.join(after.path)}** (depth {after.depth}).{shown} {movement_line(item, top_k)}\n\n"
        f"*As initialised* is the label word before training, {source}; *after training* is the learned virtual label "
        "word. Similarity is the cosine with each vocabulary word's embedding.\n\n"
        f"*This model:* {movement.sentence()}"
    )
    return rows, text


def word_map_figure(studio: Studio, model: str, label: str, top_k: int = 10) -> Any:
    """The UMAP map of every label word, the selected one starred with its nearest words around it."""
    label_id = _label_id(studio, model, label) if label else None
    if not studio.registry.has_label_words(model):
        raise HPTError(f"{model} is a plain fine-tune classifier: it has no label words to map.")
    wmap = studio.registry.word_map(model)
    neighbours: list[tuple[str, float, float, float]] = []
    if label_id is not None:
        words = wmap.words[label_id].words[: int(top_k)]
        coords = wmap.word_coords[label_id]
        neighbours = [(w, s, float(x), float(y)) for (w, s), (x, y) in zip(words, coords)]
    h = studio.registry.hierarchy(model)
    names, _ = display_names(studio, model)
    return figures.label_word_map_figure(h, wmap.label_coords.tolist(), label_id, neighbours, display=names)


def render(studio: Studio, model_picker: gr.Dropdown) -> dict[str, Any]:
    """The explorer tab's layout and events (``/explain``, ``/label_word_map``)."""
    default = studio.registry.default()
    choices = label_choices(studio, default) if default else []
    with gr.Row():
        label = gr.Dropdown(
            choices=choices,
            value=_choice_value(choices[0]) if choices else None,
            label="Label",
            info="Type to search; or click a label in the Hierarchy tab.",
            filterable=True,
            allow_custom_value=True,  # choices follow the selected model; the handler checks the label
            scale=3,
        )
        top_k = gr.Slider(3, 30, value=10, step=1, label="Nearest words", scale=1)
        button = gr.Button("Explain", variant="primary", scale=1)
    about = gr.Markdown()
    with gr.Row():
        words = gr.Dataframe(headers=WORD_HEADERS, label="Nearest vocabulary words", interactive=False, scale=2)
        word_map = gr.Plot(label="Map of all label words (UMAP)", scale=3)

    explain_handler = user_errors(lambda m, lab, k: explain(studio, m, lab, k))
    map_handler = user_errors(lambda m, lab, k: word_map_figure(studio, m, lab, k))
    inputs = [model_picker, label, top_k]
    event = button.click(explain_handler, inputs, [words, about], api_name="explain")
    event.then(map_handler, inputs, word_map, api_name="label_word_map")

    def on_label(model: str, lab: str, k: float) -> Any:
        """Explain a newly picked label; a fine-tune model gets a note instead of an error."""
        if not model or not lab:
            return [], ""
        if not studio.registry.has_label_words(model):
            return [], f"**{model}** is a plain fine-tune classifier: it has no label words. Pick an HPT model above."
        return explain(studio, model, lab, k)

    def on_label_map(model: str, lab: str, k: float) -> Any:
        if not model or not lab or not studio.registry.has_label_words(model):
            return None
        return word_map_figure(studio, model, lab, k)

    label.change(user_errors(on_label), inputs, [words, about], api_visibility="private").then(
        user_errors(on_label_map), inputs, word_map, api_visibility="private"
    )

    def on_model(model: str) -> Any:
        options = label_choices(studio, model) if model else []
        return gr.update(choices=options, value=_choice_value(options[0]) if options else None)

    model_picker.change(user_errors(on_model), model_picker, label, api_visibility="private")
    return {"label": label, "button": button, "words": words, "map": word_map}
