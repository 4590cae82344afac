"""Reading labelled text datasets, validating them, splitting them and subsampling them.

Supported files (chosen by extension; a trailing ``.gz`` is decompressed transparently):

* ``.jsonl`` / ``.json``: one JSON object per line (or one top-level JSON array of objects). Three record shapes:
  ours ``{"text": ..., "labels": [["CS", "Machine learning"]], "split": "train"}`` (``labels`` may also be one path
  ``["CS", "Machine learning"]``, a string ``"CS > Machine learning"`` or a list of such strings), the HPT format
  ``{"doc_token": ..., "doc_label": ["CS", "Machine learning"]}`` and the 20 Newsgroups dump
  ``{"text": ..., "label_l1": "comp", "label": "comp.graphics", "split": "test"}``.
* ``.csv`` / ``.tsv``: a header row naming the columns ``text`` and ``labels`` (and optionally ``split``); labels are
  ``A > B`` paths separated by ``;``.

Every problem is reported as ``FILE:LINE: field: what is wrong and how to fix it``; ``load_dataset`` collects all of
them and raises a single ``DatasetError``, ``validate`` returns them in a ``ValidationReport``.

Modules, in the order data flows through them:

* ``types``: ``Record``, ``Document``, ``Dataset``, ``ValidationReport``.
* ``fields``: one field's value → label paths, split or text (or what is wrong with it).
* ``files``: a path → decoded lines (extension, ``.gz``, encoding checks).
* ``formats``: lines → ``Record``s, for JSON/JSONL, CSV/TSV and ``.txt``.
* ``loading``: records → ``Document``s resolved against a hierarchy; ``load_dataset``, ``validate``, ``read_records``,
  ``read_texts``.
* ``newsgroups``: the 20 Newsgroups dump and message stripping.
* ``splits``: ``split_dataset`` and ``low_resource``.
"""

from __future__ import annotations

from hpt_core.data.files import DATA_EXTENSIONS, TEXT_EXTENSIONS
from hpt_core.data.loading import load_dataset, read_records, read_texts, validate
from hpt_core.data.newsgroups import load_20newsgroups, strip_newsgroup_message, strip_newsgroup_texts
from hpt_core.data.splits import low_resource, split_dataset
from hpt_core.data.types import Dataset, Document, Record, ValidationReport

__all__ = [
    "DATA_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "Dataset",
    "Document",
    "Record",
    "ValidationReport",
    "load_20newsgroups",
    "load_dataset",
    "low_resource",
    "read_records",
    "read_texts",
    "split_dataset",
    "strip_newsgroup_message",
    "strip_newsgroup_texts",
    "validate",
]
