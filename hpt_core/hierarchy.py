"""The label hierarchy: a forest of labels below an implicit Root.

A label is identified by its *path* from the top (a tuple of names, root first), so two labels with the same name
under different parents stay distinct. Depth is counted from 0: depth 0 holds the children of Root (the paper's
layer 1). Label ids are ordered by depth, then by first appearance, so ``labels_at_depth(d)`` is contiguous, but
code must still use ``depth_of`` rather than id ranges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hpt_core.errors import HierarchyError

__all__ = ["LabelHierarchy", "PATH_SEPARATOR"]

PATH_SEPARATOR = " > "
ROOT_NAME = "Root"


@dataclass(frozen=True)
class _Label:
    name: str
    parent: int  # -1 for a top-level label
    depth: int


@dataclass
class LabelHierarchy:
    """A label tree. Build it with ``from_paths``, ``from_taxonomy`` or ``from_dict``.

    Example:
        >>> h = LabelHierarchy.from_paths([["CS", "Machine learning"], ["Medical", "Cancer"]])
        >>> h.num_labels, h.num_levels, h.path(h.index(["CS", "Machine learning"]))
        (4, 2, ['CS', 'Machine learning'])
    """

    _labels: list[_Label] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_path: dict[tuple[str, ...], int] = {}
        self._by_name: dict[str, list[int]] = {}
        self._children: list[list[int]] = [[] for _ in self._labels]
        self._paths: list[tuple[str, ...]] = []  # names from the top, computed once (prediction needs many)
        for i, label in enumerate(self._labels):
            path = tuple(self._labels[a].name for a in self.ancestors(i)) + (label.name,)
            self._paths.append(path)
            self._by_path[path] = i
            self._by_name.setdefault(label.name, []).append(i)
            if label.parent >= 0:
                self._children[label.parent].append(i)
        if not self._labels:
            raise HierarchyError("The hierarchy has no labels: give at least one label path.")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]]) -> LabelHierarchy:
        """Union of label paths (root first). Every prefix of a path becomes a label."""
        parent_of: dict[tuple[str, ...], tuple[str, ...] | None] = {}
        order: list[tuple[str, ...]] = []
        for raw in paths:
            path = tuple(str(p).strip() for p in raw)
            if not path or any(not p for p in path):
                raise HierarchyError(f"Label path {list(raw)!r} is empty or has an empty name.")
            for k in range(1, len(path) + 1):
                key = path[:k]
                if key not in parent_of:
                    parent_of[key] = path[: k - 1] or None
                    order.append(key)
        return cls._from_keys(order, parent_of)

    @classmethod
    def _from_keys(
        cls,
        order: list[tuple[str, ...]],
        parent_of: dict[tuple[str, ...], tuple[str, ...] | None],
    ) -> LabelHierarchy:
        ranked = sorted(range(len(order)), key=lambda i: (len(order[i]), i))
        keys = [order[i] for i in ranked]
        index = {k: i for i, k in enumerate(keys)}
        labels = []
        for key in keys:
            parent = parent_of[key]
            labels.append(_Label(key[-1], index[parent] if parent else -1, len(key) - 1))
        return cls(labels)

    @classmethod
    def from_taxonomy(cls, file: str | Path) -> LabelHierarchy:
        """Read the HPT tab format: each line is a parent followed by its children, tab-separated.

        The first line is usually ``Root`` followed by the top-level labels. Without a ``Root`` line, parents that are
        nobody's child are the top-level labels (so a two-column ``parent<TAB>child`` edge list also works).
        Names must be unique in the file, since lines refer to parents by name.
        """
        file = Path(file)
        try:
            text = file.read_text(encoding="utf-8-sig")
        except FileNotFoundError as e:
            raise HierarchyError(f"Hierarchy file {file} does not exist.") from e
        except UnicodeDecodeError as e:
            raise HierarchyError(f"{file}: not UTF-8 text (byte {e.start}); save the hierarchy file as UTF-8.") from e
        except OSError as e:
            raise HierarchyError(f"Cannot read hierarchy file {file}: {e.strerror}.") from e
        if "\x00" in text:
            raise HierarchyError(f"{file}: looks like a binary file; a hierarchy file is tab-separated text.")
        parent_of: dict[str, str] = {}
        line_of: dict[str, int] = {}
        order: list[str] = []
        parents_seen: list[str] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            cells = [c.strip() for c in line.split("\t")]
            cells = [c for c in cells if c]
            if not cells:
                continue
            if len(cells) < 2:
                raise HierarchyError(
                    f"{file}:{lineno}: line has a parent {cells[0]!r} but no children; each line must be a parent "
                    "followed by its children, separated by tabs."
                )
            parent, children = cells[0], cells[1:]
            if parent not in parents_seen:
                parents_seen.append(parent)
            for child in children:
                if child == parent:
                    raise HierarchyError(f"{file}:{lineno}: label {child!r} is listed as its own child.")
                if child == ROOT_NAME:
                    raise HierarchyError(f"{file}:{lineno}: 'Root' cannot be a child.")
                if child in parent_of and parent_of[child] != parent:
                    raise HierarchyError(
                        f"{file}:{lineno}: label {child!r} has two parents, {parent_of[child]!r} (line "
                        f"{line_of[child]}) and {parent!r}; a label tree gives each label exactly one parent."
                    )
                if child in parent_of:
                    continue
                parent_of[child] = parent
                line_of[child] = lineno
                order.append(child)
        if not order:
            raise HierarchyError(f"{file}: no labels found; expected lines 'parent<TAB>child<TAB>child...'.")
        has_root = ROOT_NAME in parents_seen
        for p in parents_seen:
            if p != ROOT_NAME and p not in parent_of:
                if has_root:
                    raise HierarchyError(
                        f"{file}: label {p!r} has children but is not a child of Root or of any label; add it to "
                        "the Root line or to its parent's line."
                    )
                parent_of[p] = ROOT_NAME
                order.append(p)
        # Paths from Root, with cycle detection.
        paths: dict[str, tuple[str, ...]] = {}
        for name in order:
            chain = [name]
            seen = {name}
            node = name
            while parent_of[node] != ROOT_NAME:
                node = parent_of[node]
                if node in seen:
                    raise HierarchyError(
                        f"{file}: cycle in the hierarchy: {' -> '.join(reversed(chain + [node]))}; a label cannot "
                        "be its own ancestor."
                    )
                if node not in parent_of:
                    raise HierarchyError(f"{file}: label {node!r} is not connected to Root.")
                seen.add(node)
                chain.append(node)
            paths[name] = tuple(reversed(chain))
        keys = [paths[n] for n in order]
        key_parent = {paths[n]: (paths[parent_of[n]] if parent_of[n] != ROOT_NAME else None) for n in order}
        return cls._from_keys(keys, key_parent)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (``hierarchy.json``): names and parent ids in label-id order."""
        return {
            "format": "hpt-hierarchy/1",
            "labels": [{"name": lab.name, "parent": lab.parent} for lab in self._labels],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelHierarchy:
        """Inverse of ``to_dict``; validates that parents come before children and ids are in range."""
        try:
            raw = data["labels"]
            labels: list[_Label] = []
            for i, item in enumerate(raw):
                name, parent = str(item["name"]), int(item["parent"])
                if not -1 <= parent < i:
                    raise HierarchyError(f"hierarchy.json: label {i} ({name!r}) has invalid parent id {parent}.")
                labels.append(_Label(name, parent, 0 if parent < 0 else labels[parent].depth + 1))
        except (KeyError, TypeError, ValueError) as e:
            raise HierarchyError(f"hierarchy.json is malformed ({e!r}); expected a list of {{name, parent}}.") from e
        return cls(labels)

    # ------------------------------------------------------------------ queries
    @property
    def num_labels(self) -> int:
        """C, the number of labels (Root excluded)."""
        return len(self._labels)

    @property
    def num_levels(self) -> int:
        """L, the depth of the tree (number of levels)."""
        return max(lab.depth for lab in self._labels) + 1

    @property
    def names(self) -> list[str]:
        return [lab.name for lab in self._labels]

    @property
    def parents(self) -> list[int]:
        """Parent id of each label, -1 for top-level labels."""
        return [lab.parent for lab in self._labels]

    @property
    def depth_of(self) -> list[int]:
        """Depth (0-based level) of each label."""
        return [lab.depth for lab in self._labels]

    def name(self, label: int) -> str:
        return self._labels[label].name

    def depth(self, label: int) -> int:
        """Depth (0-based level) of one label; ``depth_of`` builds the whole list."""
        return self._labels[label].depth

    def short_name(self, label: int) -> str:
        """Name without its parent's prefix (NYT's ``Top/News/Sports`` → ``Sports``), for label-word init."""
        name = self._labels[label].name
        parent = self._labels[label].parent
        if parent >= 0:
            prefix = self._labels[parent].name
            for sep in ("/", ".", " > "):
                if name.startswith(prefix + sep) and len(name) > len(prefix) + len(sep):
                    return name[len(prefix) + len(sep) :]
            return name
        return name.rsplit("/", 1)[-1] if "/" in name.strip("/") else name  # top-level "Top/Features"

    def labels_at_depth(self, depth: int) -> list[int]:
        return [i for i, lab in enumerate(self._labels) if lab.depth == depth]

    def level_sizes(self) -> list[int]:
        return [len(self.labels_at_depth(d)) for d in range(self.num_levels)]

    def children(self, label: int | None) -> list[int]:
        """Children of ``label``; ``None`` gives the top-level labels."""
        if label is None:
            return self.labels_at_depth(0)
        return list(self._children[label])

    def ancestors(self, label: int) -> list[int]:
        """Ancestors of ``label``, top first, excluding the label itself."""
        out = []
        parent = self._labels[label].parent
        while parent >= 0:
            out.append(parent)
            parent = self._labels[parent].parent
        return out[::-1]

    def path(self, label: int) -> list[str]:
        """Names from the top down to ``label`` (a new list)."""
        return list(self._paths[label])

    def path_string(self, label: int) -> str:
        return PATH_SEPARATOR.join(self.path(label))

    def is_leaf(self, label: int) -> bool:
        return not self._children[label]

    def index(self, path: Sequence[str] | str) -> int:
        """Id of the label at ``path`` (names root first, or an ``"A > B"`` string).

        A single name that is unique in the tree is also accepted (``"Machine learning"``).
        """
        if isinstance(path, str):
            path = [p.strip() for p in path.split(PATH_SEPARATOR.strip())]
        key = tuple(str(p).strip() for p in path)
        if key in self._by_path:
            return self._by_path[key]
        if len(key) == 1 and len(self._by_name.get(key[0], [])) == 1:
            return self._by_name[key[0]][0]
        raise HierarchyError(self._explain_unknown(key))

    def _explain_unknown(self, key: tuple[str, ...]) -> str:
        shown = PATH_SEPARATOR.join(key)
        if len(key) == 1 and len(self._by_name.get(key[0], [])) > 1:
            options = "; ".join(self.path_string(i) for i in self._by_name[key[0]])
            return f"label {shown!r} is ambiguous: it appears at {options}; give the full path."
        for k in range(len(key), 0, -1):
            if key[:k] in self._by_path:
                parent = self._by_path[key[:k]]
                if self.is_leaf(parent):
                    return (
                        f"label path {shown!r} is deeper than the hierarchy: {key[k - 1]!r} has no children; "
                        "shorten the path or add the label to the hierarchy file."
                    )
                kids = self._some_names(self._children[parent])
                return f"label {key[k]!r} is not a child of {key[k - 1]!r} (children: {kids}); check the spelling."
        tops = self._some_names(self.labels_at_depth(0))
        return f"label {key[0]!r} is not a top-level label of the hierarchy (top-level: {tops}); check the spelling."

    def _some_names(self, labels: Sequence[int], limit: int = 8) -> str:
        """The first ``limit`` names, quoted, and "and N more" when there are more."""
        shown = ", ".join(repr(self.name(c)) for c in labels[:limit])
        return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")

    def closure(self, labels: Iterable[int]) -> list[int]:
        """The labels plus all their ancestors, sorted."""
        out: set[int] = set()
        for label in labels:
            out.add(label)
            out.update(self.ancestors(label))
        return sorted(out)

    def is_consistent(self, labels: Iterable[int]) -> bool:
        """True when every label's parent is also in the set (no orphans)."""
        chosen = set(labels)
        return all(self._labels[i].parent < 0 or self._labels[i].parent in chosen for i in chosen)

    def edge_index(self) -> torch.Tensor:
        """Parent→child edges of the tree, shape ``(2, E)`` (row 0 source, row 1 target; Root excluded)."""
        pairs = [(lab.parent, i) for i, lab in enumerate(self._labels) if lab.parent >= 0]
        if not pairs:
            return torch.empty(2, 0, dtype=torch.long)
        return torch.tensor(pairs, dtype=torch.long).t().contiguous()

    def to_networkx(self) -> Any:
        """A ``networkx.DiGraph`` with a ``Root`` node; node attributes ``name``, ``depth``."""
        import networkx as nx  # only this export needs networkx; importing the hierarchy should not

        graph = nx.DiGraph()
        graph.add_node(ROOT_NAME, name=ROOT_NAME, depth=-1)
        for i, lab in enumerate(self._labels):
            graph.add_node(i, name=lab.name, depth=lab.depth)
            graph.add_edge(lab.parent if lab.parent >= 0 else ROOT_NAME, i)
        return graph

    def __len__(self) -> int:
        return self.num_labels

    def __repr__(self) -> str:
        return f"LabelHierarchy(num_labels={self.num_labels}, levels={self.level_sizes()})"
