"""What every tab shares: the ``Studio`` (config, model registry, job manager) and the error contract.

Handlers turn our own errors (``HPTError``) into ``gr.Error`` with the message as is; anything else is logged with
its traceback on the server and shown to the user as one short sentence, never a traceback.
"""

from __future__ import annotations

import functools
import html
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from hpt_core.errors import HPTError
from hpt_core.label_names import display_path as display_names_of

from .config import AppConfig
from .jobs import JobManager
from .registry import ModelRegistry

__all__ = [
    "Studio",
    "user_errors",
    "tree_mode",
    "label_vector",
    "clip_text",
    "probability_to_score",
    "display_names",
    "display_path",
    "VIEW_CHOICES",
    "RULE_CHOICES",
]

log = logging.getLogger("hpt_studio")

VIEW_CHOICES = {
    "Automatic (whole tree when small)": "auto",
    "Predicted paths and their siblings": "paths",
    "Whole tree": "full",
}
RULE_CHOICES = {
    "Paper: every label above the threshold": "paper",
    "Top-down: only children of predicted labels": "top-down",
    "Drop labels whose parent is not predicted": "drop-orphans",
    "Add the ancestors of predicted labels": "add-ancestors",
}
AUTO_FULL_TREE_LABELS = 60  # above this many labels the tree shows predicted paths and siblings by default


def tree_mode(view: str, num_labels: int) -> str:
    """The tree view to draw: ``auto`` becomes ``paths`` (predicted paths and siblings) above
    ``AUTO_FULL_TREE_LABELS`` labels, otherwise the view as chosen."""
    return "paths" if view == "auto" and num_labels > AUTO_FULL_TREE_LABELS else view


def label_vector(hierarchy: Any, prediction: Any) -> tuple[list[float], list[int]]:
    """A prediction (with ``all_scores``) as a per-label-id score list and its predicted label ids."""
    scores = [0.0] * hierarchy.num_labels
    for s in prediction.scores:
        scores[hierarchy.index(s.path)] = s.score
    return scores, [hierarchy.index(s.path) for s in prediction.labels]


@dataclass
class Studio:
    """The app's shared, long-lived objects (one per process; per-user state lives in the components)."""

    config: AppConfig
    registry: ModelRegistry
    jobs: JobManager

    @classmethod
    def create(cls, config: AppConfig | None = None) -> Studio:
        config = config or AppConfig()
        registry = ModelRegistry(config)
        registry.clean_leftovers()
        return cls(config, registry, JobManager(registry, config))


def _message(error: Exception) -> str:
    """The sentence the user sees. Gradio renders error messages as HTML, and ours quote user data (file and label
    names), so ``<``, ``>`` and ``&`` are escaped: a label named ``<img ...>`` shows as text, never as an element."""
    if isinstance(error, HPTError):
        return html.escape(str(error), quote=False)
    log.exception("unexpected error in a handler", exc_info=error)
    return f"Something went wrong ({type(error).__name__}); the server log has the details. Please try again."


def _error(error: Exception) -> gr.Error:
    """The ``gr.Error`` for ``error``; our own (expected) errors are not printed to the server log as tracebacks."""
    return gr.Error(_message(error), print_exception=not isinstance(error, HPTError))


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler (function or generator) so that every error reaches the user as a ``gr.Error`` sentence."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # noqa: BLE001 - the contract: never a traceback in the UI
                raise _error(e) from e

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - the contract: never a traceback in the UI
            raise _error(e) from e

    return wrapper


def clip_text(text: str | None, limit: int) -> tuple[str, str]:
    """The text cut to ``limit`` characters, and a note saying so (empty when nothing was cut)."""
    text = text or ""
    if not text.strip():
        raise HPTError("The text is empty: paste a document or pick an example.")
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"The text was cut to its first {limit:,} characters (of {len(text):,})."


def probability_to_score(probability: float) -> float:
    """The raw-score threshold of a probability threshold (the model predicts a label when sigmoid(s) > p)."""
    p = min(max(float(probability), 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def display_names(studio: Studio, model: str) -> tuple[dict[int, str], dict[int, str]]:
    """The model's display names and descriptions by label id (from its label-names file; both empty without one)."""
    names = studio.registry.label_names(model)
    return {i: n.name for i, n in names.items()}, {i: n.description for i, n in names.items() if n.description}


def display_path(hierarchy: Any, label: int, names: dict[int, str]) -> str:
    """A label's path in display names (``computers > graphics``), each label without one under its own name."""
    return " > ".join(display_names_of(hierarchy, label, names))
