"""``ModelRegistry``: the models the app can serve, by name; each loaded once, on first use, under a lock.

Built-in models come from ``AppConfig.models``; fine-tuned ones live in ``AppConfig.user_dir`` (one checkpoint
directory each) and are found again after a restart. Only the newest ``keep_models`` fine-tuned models are kept.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hpt_core.checkpoint import read_checkpoint, read_metrics
from hpt_core.errors import CheckpointError, ConfigError
from hpt_core.explain import Movement, WordMap, label_movement, word_map
from hpt_core.hierarchy import LabelHierarchy
from hpt_core.hub import hub_allowed, is_hub_id, resolve_checkpoint
from hpt_core.label_names import LABEL_NAMES_FILE, LabelName, label_names_from_dict
from hpt_core.model import HPTConfig
from hpt_core.predict import Predictor

from .config import HUB_ALLOW_ENV, AppConfig

__all__ = ["ModelRegistry", "TEST_FILE"]

TEST_FILE = "test.jsonl"  # a fine-tuned model's test split, saved beside its weights by the job


class ModelRegistry:
    """Names → checkpoint directories, with a small LRU cache of loaded predictors."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._loaded: OrderedDict[str, Predictor] = OrderedDict()
        self._maps: dict[str, WordMap] = {}
        self._movements: dict[tuple[str, int], Movement] = {}
        self._names: dict[str, dict[int, LabelName]] = {}
        self._opened: dict[str, Path] = {}  # name -> directory of the checkpoints opened by folder or Hub id
        config.user_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ names and files
    def builtin_names(self) -> list[str]:
        return [name for name, path in self.config.models.items() if (path / "config.json").is_file()]

    def user_names(self) -> list[str]:
        """Fine-tuned models, newest first (directories holding a saved checkpoint; staging dirs are skipped)."""
        dirs = [d for d in self.config.user_dir.iterdir() if d.is_dir() and (d / "config.json").is_file()]
        dirs.sort(key=lambda d: d.stat().st_mtime, reverse=True)
        return [d.name for d in dirs if not d.name.startswith(".")]

    def names(self) -> list[str]:
        """Every model, read afresh at each call: built-in, fine-tuned (newest first), then opened ones."""
        with self._lock:
            opened = list(self._opened)
        return self.builtin_names() + self.user_names() + opened

    def open(self, source: str) -> str:
        """Open a checkpoint by folder or Hugging Face Hub id, within ``AppConfig.open_folders`` / ``hub_allow``;
        returns its name in the pickers (the id, or the folder's name). Raises ``ConfigError`` / ``CheckpointError``
        saying what is wrong."""
        source = (source or "").strip()
        if not source:
            raise ConfigError("Give a checkpoint folder or a Hugging Face Hub id (owner/name) to open.")
        if is_hub_id(source):
            if not hub_allowed(source, self.config.hub_allow):
                allowed = ", ".join(self.config.hub_allow) or "none"
                raise ConfigError(
                    f"This app does not open {source!r}: the Hub ids it may open are {allowed} (set "
                    f"{HUB_ALLOW_ENV} to change it)."
                )
            name = source
        else:
            if not self.config.open_folders:
                raise ConfigError(
                    "This app does not open folders on its server (a public Space); give a Hub id (owner/name)."
                )
            name = Path(source).expanduser().resolve().name
        with self._lock:
            if name in self._opened:
                return name
        if name in self.builtin_names() or name in self.user_names():
            name = f"{name} ({source})"
        directory = resolve_checkpoint(source)  # downloads a Hub id (safetensors and JSON only)
        read_checkpoint(directory, HPTConfig.from_dict)  # a complete, readable checkpoint, or a clear error
        with self._lock:
            self._opened[name] = directory
        return name

    def default(self) -> str | None:
        names = self.names()
        return names[0] if names else None

    def directory(self, name: str) -> Path:
        if name in self.config.models:
            return self.config.models[name]
        with self._lock:
            if name in self._opened:
                return self._opened[name]
        path = self.config.user_dir / name
        if name and "/" not in name and "\\" not in name and not name.startswith(".") and path.is_dir():
            return path
        raise ConfigError(f"Unknown model {name!r}; pick one of: {', '.join(self.names()) or '(none yet)'}.")

    def hierarchy(self, name: str) -> LabelHierarchy:
        with self._lock:
            if name in self._loaded:
                return self._loaded[name].hierarchy
        path = self.directory(name) / "hierarchy.json"
        try:
            return LabelHierarchy.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot read the model's hierarchy ({e}).") from e

    def metrics(self, name: str) -> dict[str, Any] | None:
        return read_metrics(self.directory(name))

    def train_config(self, name: str) -> dict[str, Any]:
        path = self.directory(name) / "train_config.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def model_config(self, name: str) -> dict[str, Any]:
        path = self.directory(name) / "config.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("hpt_config", {})
        except (OSError, ValueError):
            return {}

    def label_names(self, name: str) -> dict[int, LabelName]:
        """The model's display names by label id (its ``label_names.json``, given when it was trained); empty when it
        has none. Raises ``CheckpointError`` for a file that does not fit the model's hierarchy."""
        with self._lock:
            if name in self._names:
                return self._names[name]
        path = self.directory(name) / LABEL_NAMES_FILE
        names: dict[int, LabelName] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise CheckpointError(f"{path}: cannot read the model's label names ({e}).") from e
            names = label_names_from_dict(data, self.hierarchy(name), str(path))
        with self._lock:
            self._names[name] = names
        return names

    def has_label_words(self, name: str) -> bool:
        """False for the plain fine-tune classifier (no prompt template, so no label words to explain)."""
        return self.model_config(name).get("template", "hpt") != "none"

    def eval_file(self, name: str) -> Path | None:
        own = self.directory(name) / TEST_FILE
        if own.is_file():
            return own
        given = self.config.eval_files.get(name)
        return given if given is not None and given.is_file() else None

    def card(self, name: str) -> str:
        path = self.directory(name) / "README.md"
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    # ------------------------------------------------------------------ loading
    def predictor(self, name: str) -> Predictor:
        """The loaded predictor of ``name`` (loaded on first use; concurrent first uses load it once)."""
        directory = self.directory(name)
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:
            with self._lock:
                if name in self._loaded:
                    return self._loaded[name]
            predictor = Predictor.from_pretrained(
                directory, device="cpu", precision=self.config.precision, coalesce=True
            )
            predictor.warm_up()
            with self._lock:
                self._loaded[name] = predictor
                while len(self._loaded) > self.config.max_loaded_models:
                    evicted, _ = self._loaded.popitem(last=False)
                    self._forget(evicted)
            return predictor

    def word_map(self, name: str) -> WordMap:
        """The label-word map of the model (fitted once per model: UMAP takes a few seconds)."""
        with self._lock:
            if name in self._maps:
                return self._maps[name]
        result = word_map(self.predictor(name).model)
        with self._lock:
            self._maps[name] = result
        return result

    def _forget(self, name: str) -> None:
        """Drop what was computed from a model (call under the lock)."""
        self._maps.pop(name, None)
        self._names.pop(name, None)
        for key in [key for key in self._movements if key[0] == name]:
            del self._movements[key]

    def movement(self, name: str, top_k: int) -> Movement:
        """How far the model's label words moved from their initialisation, with their ``top_k`` words before and
        after (computed once per model and ``top_k``)."""
        key = (name, int(top_k))
        with self._lock:
            if key in self._movements:
                return self._movements[key]
        result = label_movement(self.predictor(name).model, top_k=int(top_k))
        with self._lock:
            self._movements[key] = result
        return result

    # ------------------------------------------------------------------ fine-tuned models
    def prune(self, keep: int | None = None) -> list[str]:
        """Delete fine-tuned models beyond the newest ``keep`` (default ``config.keep_models``); return their names."""
        keep = self.config.keep_models if keep is None else keep
        removed = self.user_names()[keep:]
        for name in removed:
            with self._lock:
                self._loaded.pop(name, None)
                self._forget(name)
            shutil.rmtree(self.config.user_dir / name, ignore_errors=True)
        return removed

    def clean_leftovers(self) -> list[str]:
        """Remove staging directories a killed save left behind (names starting with ``.``)."""
        removed = []
        for d in self.config.user_dir.iterdir():
            if d.is_dir() and d.name.startswith("."):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        return removed
