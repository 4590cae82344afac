"""The data types: raw ``Record``s as read from a file, ``Document``s with resolved label ids, the ``Dataset`` that
holds them with their hierarchy, and the ``ValidationReport`` of ``validate``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hpt_core.hierarchy import LabelHierarchy

__all__ = ["SPLITS", "Dataset", "Document", "Record", "ValidationReport"]

SPLITS = ("train", "dev", "test")


@dataclass
class Record:
    """One raw record as read from a file, before its labels are resolved against a hierarchy.

    ``label_set`` is True for HPT ``doc_label`` lists: the names are one root-first path when they form a chain in the
    hierarchy, otherwise a set of label names (multi-path data such as RCV1).
    """

    text: str
    paths: list[list[str]]
    split: str | None
    line: int
    label_set: bool = False


@dataclass
class Document:
    """A document with resolved label ids (sorted, closed under ancestors)."""

    text: str
    labels: list[int]
    split: str | None = None
    line: int = 0


@dataclass
class Dataset:
    """Documents labelled against one hierarchy."""

    documents: list[Document]
    hierarchy: LabelHierarchy
    source: str

    def __len__(self) -> int:
        return len(self.documents)

    def label_counts(self) -> list[int]:
        """Number of documents carrying each label id (length ``hierarchy.num_labels``)."""
        counts = [0] * self.hierarchy.num_labels
        for doc in self.documents:
            for label in doc.labels:
                counts[label] += 1
        return counts

    def subset(self, documents: list[Document]) -> Dataset:
        """A dataset over ``documents`` with the same hierarchy and source."""
        return Dataset(list(documents), self.hierarchy, self.source)


@dataclass
class ValidationReport:
    """What ``validate`` found. Counts cover the documents without problems.

    ``problems`` may be cut to ``max_problems`` entries; ``problems_found`` is the number found in all.
    """

    source: str
    n_documents: int
    n_labels: int
    labels_per_depth: list[int]
    label_counts: dict[str, int]
    splits: dict[str, int]
    problems: list[str]
    problems_found: int | None = None

    def __post_init__(self) -> None:
        if self.problems_found is None:
            self.problems_found = len(self.problems)

    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems_found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ok`` and ``problems_found``."""
        out = asdict(self)
        out["ok"] = self.ok()
        return out
