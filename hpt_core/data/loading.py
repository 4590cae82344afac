"""Records → ``Document``s resolved against a hierarchy (given, read from a taxonomy file, or the union of the file's
label paths): ``load_dataset`` raises one ``DatasetError`` listing every problem, ``validate`` reports them instead;
``read_records`` and ``read_texts`` read a file without a hierarchy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hpt_core.data.fields import at
from hpt_core.data.formats import parse_file
from hpt_core.data.types import SPLITS, Dataset, Document, Record, ValidationReport
from hpt_core.errors import ConfigError, DatasetError, HierarchyError
from hpt_core.hierarchy import LabelHierarchy

__all__ = ["MESSAGE_PROBLEMS", "load_dataset", "raise_problems", "read_records", "read_texts", "validate"]

MESSAGE_PROBLEMS = 20  # problems quoted in a DatasetError message; the full list is on ``error.problems``


def _by_line(source: str, problems: list[str]) -> list[str]:
    """Problems in file order (file-level ones first), stable otherwise."""
    prefix = f"{source}:"

    def line(problem: str) -> int:
        head = problem[len(prefix) :].split(":", 1)[0] if problem.startswith(prefix) else ""
        return int(head) if head.isdigit() else 0

    return sorted(problems, key=line)


def raise_problems(source: str, problems: list[str]) -> None:
    """One ``DatasetError`` listing ``problems`` in file order (the first ``MESSAGE_PROBLEMS`` quoted); none: no-op."""
    if not problems:
        return
    problems = _by_line(source, problems)
    if len(problems) == 1:
        raise DatasetError(problems[0], problems=problems)
    shown = problems[:MESSAGE_PROBLEMS]
    lines = [f"{source}: {len(problems)} problems found:", *(f"  {p}" for p in shown)]
    if len(problems) > len(shown):
        lines.append(f"  ... and {len(problems) - len(shown)} more problems")
    raise DatasetError("\n".join(lines), problems=problems)


def read_records(file: str | Path) -> list[Record]:
    """Read the raw records of a data file. Raises DatasetError listing every problem found."""
    records, problems = parse_file(file, need_labels=True)
    raise_problems(str(file), problems)
    return records


def read_texts(file: str | Path) -> list[str]:
    """Texts to classify: a ``.txt`` file with one text per line (blank lines skipped) or any data file.

    Labels and splits in data files are ignored and may be absent.
    """
    records, problems = parse_file(file, need_labels=False)
    raise_problems(str(file), problems)
    return [r.text for r in records]


def _resolve_set(names: list[str], hierarchy: LabelHierarchy) -> list[int]:
    """Ids of an HPT ``doc_label``: one path when it forms a chain, else each name on its own."""
    try:
        return [hierarchy.index(names)]
    except HierarchyError as chain_error:
        ids = []
        for k, name in enumerate(names):
            try:
                ids.append(hierarchy.index([name]))
            except HierarchyError as e:
                if k == len(names) - 1 and len(names) <= hierarchy.num_levels:
                    try:
                        hierarchy.index(names[:-1])
                    except HierarchyError:
                        raise e from None
                    raise chain_error from None  # a chain up to the last name: explain it as a path
                raise
        return ids


def _resolve(records: list[Record], hierarchy: LabelHierarchy, source: str) -> tuple[list[Document], list[str]]:
    documents: list[Document] = []
    problems: list[str] = []
    for record in records:
        ids: list[int] = []
        errors: list[str] = []
        for path in record.paths:
            try:
                if record.label_set:
                    ids.extend(_resolve_set(path, hierarchy))
                else:
                    ids.append(hierarchy.index(path))
            except HierarchyError as e:
                errors.append(f"{at(source, record.line, 'labels')}{e}")
        if errors:
            problems.extend(dict.fromkeys(errors))
            continue
        documents.append(Document(record.text, hierarchy.closure(ids), record.split, record.line))
    return documents, problems


def _hierarchy_for(
    records: list[Record],
    hierarchy: LabelHierarchy | None,
    hierarchy_file: str | Path | None,
) -> LabelHierarchy | None:
    if hierarchy is not None and hierarchy_file is not None:
        raise ConfigError("Give either a hierarchy or a hierarchy file, not both.")
    if hierarchy is not None:
        return hierarchy
    if hierarchy_file is not None:
        return LabelHierarchy.from_taxonomy(hierarchy_file)
    paths = [p for r in records for p in r.paths]
    return LabelHierarchy.from_paths(paths) if paths else None


def load_dataset(
    file: str | Path,
    hierarchy: LabelHierarchy | None = None,
    hierarchy_file: str | Path | None = None,
) -> Dataset:
    """Read a data file and resolve its labels against ``hierarchy`` (or ``hierarchy_file``, or the union of the
    file's label paths when neither is given).

    Raises DatasetError listing every problem (``FILE:LINE: field: message``); HierarchyError when the hierarchy file
    itself is malformed.
    """
    source = str(file)
    records, problems = parse_file(file, need_labels=True)
    tree = _hierarchy_for(records, hierarchy, hierarchy_file)
    documents: list[Document] = []
    if tree is not None:
        documents, found = _resolve(records, tree, source)
        problems += found
    raise_problems(source, problems)
    assert tree is not None  # no problems implies at least one record
    return Dataset(documents, tree, source)


def validate(
    file: str | Path,
    hierarchy_file: str | Path | None = None,
    max_problems: int | None = None,
    hierarchy: LabelHierarchy | None = None,
) -> ValidationReport:
    """Check a data file without raising: every problem, even an unreadable file, goes into the report."""
    source = str(file)
    problems: list[str] = []
    records: list[Record] = []
    try:
        records, problems = parse_file(file, need_labels=True)
    except DatasetError as e:
        problems = list(e.problems)
    tree: LabelHierarchy | None = None
    try:
        tree = _hierarchy_for(records, hierarchy, hierarchy_file)
    except (HierarchyError, ConfigError) as e:
        message = str(e)
        if hierarchy_file is not None and str(hierarchy_file) not in message:
            message = f"{hierarchy_file}: {message}"
        problems.append(message)
        try:
            tree = _hierarchy_for(records, None, None)  # still count the documents
        except HierarchyError:
            tree = None
    documents: list[Document] = []
    if tree is not None:
        documents, found = _resolve(records, tree, source)
        problems += found
    problems = _by_line(source, problems)
    total = len(problems)
    if max_problems is not None:
        problems = problems[: max(0, max_problems)]
    counts = Dataset(documents, tree, source).label_counts() if tree is not None else []
    split_counts = Counter(d.split or "unsplit" for d in documents)
    return ValidationReport(
        source=source,
        n_documents=len(documents),
        n_labels=tree.num_labels if tree is not None else 0,
        labels_per_depth=tree.level_sizes() if tree is not None else [],
        label_counts={tree.path_string(i): c for i, c in enumerate(counts)} if tree is not None else {},
        splits={s: split_counts[s] for s in (*SPLITS, "unsplit") if split_counts[s]},
        problems=problems,
        problems_found=total,
    )
