"""Files in, predictions out: a file of texts → one prediction row per text, streamed in chunks, written atomically.

Input files (by extension; a trailing ``.gz`` is decompressed on the fly):

* ``.csv`` / ``.tsv``: a header row naming a ``text`` column and optionally an ``id`` column (other columns, labels
  included, are ignored);
* ``.jsonl`` / ``.json``: one JSON object per line with ``text`` (or HPT's ``doc_token``) and optionally ``id``; a
  ``.json`` file holding one top-level array is accepted too, but read whole (arrays cannot be streamed);
* ``.txt``: one text per line, the id is the line number (blank lines are skipped).

A record without an ``id`` (or with an empty one) gets its line number. Every problem is reported as
``FILE:LINE: field: what is wrong and how to fix it``, in the style of ``hpt_core.data``.

Output rows (``PredictionRow``), CSV or JSON Lines, columns ``OUTPUT_COLUMNS``: ``id``, ``text_preview`` (the first
``PREVIEW_CHARS`` characters on one line), ``paths`` (the predicted label paths, best first), ``probabilities`` (one
per path: the probability, sigmoid of the score, of the path's deepest label, as the app's table shows it),
``truncated`` (the text was longer than the model reads), ``display_names`` (the same paths in the model's display
names, from the label-names file it was trained with; a label without one keeps its name) and ``below_threshold``
(with ``best=True``: no label passed the threshold and ``paths`` is the model's best path, a guess to review). In
CSV a path is ``A > B`` and several are separated by ``; `` (the training CSV format), probabilities likewise; in
JSONL they are lists.

Memory stays bounded whatever the file size: ``iter_records`` reads line by line, ``predict_rows`` holds one chunk,
and ``write_predictions`` streams into a temporary file renamed into place at the end (``hpt_core.atomic``), so a
failure leaves nothing half-written and an existing output is replaced only with ``overwrite=True``.
``classify_file`` does it all: a validation pass over the whole file first (so a bad line 90,000 is reported before
any work, with every other problem), then the prediction pass.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hpt_core.atomic import atomic_file, check_file_target
from hpt_core.data.fields import BadValue, at, kind_of, parse_text
from hpt_core.data.files import TEXT_EXTENSIONS, check_path, format_of, read_lines
from hpt_core.data.formats import _json_array, _json_message, record_text
from hpt_core.errors import ConfigError, DatasetError
from hpt_core.label_names import display_path, label_names_from_dict

__all__ = [
    "CHUNK_SIZE",
    "OUTPUT_COLUMNS",
    "OUTPUT_FORMATS",
    "PREVIEW_CHARS",
    "ClassifyResult",
    "FileCheck",
    "PredictionRow",
    "TextRecord",
    "check_file",
    "classify_file",
    "iter_records",
    "output_format",
    "predict_rows",
    "preview",
    "write_predictions",
]

OUTPUT_FORMATS = ("csv", "jsonl")
OUTPUT_COLUMNS = ("id", "text_preview", "paths", "probabilities", "truncated", "display_names", "below_threshold")
PREVIEW_CHARS = 100
CHUNK_SIZE = 256  # texts per Predictor.predict call (it batches them further by its own batch size)
PROBABILITY_DECIMALS = 4  # as the app's table shows them; the same rounding in CSV and JSONL
MAX_PROBLEMS_KEPT = 1_000  # problem messages a check keeps (all are counted)
MESSAGE_PROBLEMS = 20  # problems quoted in the DatasetError message
PATH_JOIN = " > "
PATHS_JOIN = "; "
_EXAMPLE = '{"id": "doc-1", "text": "..."}'


@dataclass(frozen=True)
class TextRecord:
    """One text to classify: its id (given, or the line number), the text, and the line it starts on."""

    id: str | int
    text: str
    line: int


@dataclass
class PredictionRow:
    """One output row (``OUTPUT_COLUMNS``); ``prediction`` is the full ``Prediction`` it was made from."""

    id: str | int
    text_preview: str
    paths: list[list[str]]
    probabilities: list[float]  # one per path, the probability of its deepest label
    truncated: bool = False
    display_names: list[list[str]] | None = None  # ``paths`` in display names; None: the same as ``paths``
    below_threshold: bool = False  # ``paths`` is the best path, shown although no label passed the threshold
    prediction: Any = field(default=None, repr=False, compare=False)

    @property
    def shown_paths(self) -> list[list[str]]:
        """``display_names`` when the model has display names, else ``paths``."""
        return self.paths if self.display_names is None else self.display_names

    def to_json(self) -> dict[str, Any]:
        """The JSONL row: paths as lists of names, probabilities as a list of numbers."""
        return {
            "id": self.id,
            "text_preview": self.text_preview,
            "paths": self.paths,
            "probabilities": self.probabilities,
            "truncated": self.truncated,
            "display_names": self.shown_paths,
            "below_threshold": self.below_threshold,
        }

    def to_csv(self) -> list[str]:
        """The CSV row: ``A > B; C > D`` paths and ``0.9731; 0.6120`` probabilities, in the same order."""
        return [
            _inert(str(self.id)),
            _inert(self.text_preview),
            _inert(PATHS_JOIN.join(PATH_JOIN.join(p) for p in self.paths)),
            PATHS_JOIN.join(f"{p:.{PROBABILITY_DECIMALS}f}" for p in self.probabilities),
            "true" if self.truncated else "false",
            _inert(PATHS_JOIN.join(PATH_JOIN.join(p) for p in self.shown_paths)),
            "true" if self.below_threshold else "false",
        ]


def _inert(cell: str) -> str:
    """A CSV cell a spreadsheet will not run: one starting with ``= + - @`` (or a tab / carriage return) gets a
    leading apostrophe, the usual defence against formula injection from untrusted texts."""
    return "'" + cell if cell[:1] in FORMULA_STARTS else cell


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class FileCheck:
    """What a validation pass found: the texts it would classify and the problems (the first ``MAX_PROBLEMS_KEPT``
    messages; ``problems_found`` counts them all)."""

    source: str
    n_texts: int
    problems: list[str]
    problems_found: int

    @property
    def ok(self) -> bool:
        return self.problems_found == 0

    def raise_if_problems(self) -> None:
        """One ``DatasetError`` quoting the first problems (all kept ones on ``error.problems``); none: no-op."""
        if self.ok:
            return
        if self.problems_found == 1:
            raise DatasetError(self.problems[0], problems=self.problems)
        shown = self.problems[:MESSAGE_PROBLEMS]
        lines = [f"{self.source}: {self.problems_found} problems found:", *(f"  {p}" for p in shown)]
        if self.problems_found > len(shown):
            lines.append(f"  ... and {self.problems_found - len(shown)} more problems")
        raise DatasetError("\n".join(lines), problems=self.problems)


@dataclass
class ClassifyResult:
    """What ``classify_file`` did: texts classified, the files written, the first rows, a few counts."""

    source: str
    n_texts: int
    outputs: list[Path]
    first_rows: list[PredictionRow]  # the first ``keep`` rows
    n_without_label: int  # texts where no label passed the threshold (shown with their best path when ``best``)
    n_truncated: int  # texts longer than the model reads
    top_labels: dict[str, int]  # texts per predicted top-level label, most frequent first
    seconds: float


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The text on one line (whitespace runs collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# ---------------------------------------------------------------------------------------------------- reading
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def _open_binary(path: Path, where: str) -> IO[bytes]:
    try:
        return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise DatasetError(f"{where}cannot read the file ({e.strerror or e}); check its permissions.") from None


def _lines(path: Path, source: str, problems: list[str]) -> Iterator[tuple[int, str]]:
    """``(line number, line with its line ending)``, decoded one line at a time. A line that is not valid UTF-8 is
    kept with replacement characters and its problem appended to ``problems``; a file that cannot be used at all
    raises ``DatasetError`` (the messages of ``hpt_core.data.files.read_lines``)."""
    where = at(source)
    gz = path.name.lower().endswith(".gz")
    with _open_binary(path, where) as f:
        try:
            head = f.read(65536)
            f.seek(0)
            if not head.strip():
                raise DatasetError(f"{where}the file is empty; it needs at least one record.")
            codec = next((c for bom, c in _BOMS if head.startswith(bom)), None)
            if codec is not None:
                yield from _wide_lines(f, codec, where)
                return
            if head.startswith(b"\x1f\x8b"):
                raise DatasetError(f"{where}the file is gzip-compressed; name it with a .gz suffix or decompress it.")
            if head.startswith(b"PK\x03\x04"):
                raise DatasetError(
                    f"{where}looks like a ZIP archive or an Excel workbook; export the data as CSV or JSONL."
                )
            if b"\x00" in head:
                raise DatasetError(
                    f"{where}looks like a binary file (it contains NUL bytes); a data file must be UTF-8 text "
                    "(UTF-16 files need a byte-order mark)."
                )
            for lineno, raw in enumerate(f, start=1):
                codec = "utf-8-sig" if lineno == 1 else "utf-8"
                try:
                    line = raw.decode(codec)
                except UnicodeDecodeError as e:
                    offset = e.start + (3 if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else 0)
                    col = len(raw[:offset].decode(codec, errors="replace")) + 1
                    problems.append(
                        f"{at(source, lineno)}not valid UTF-8 (byte 0x{raw[offset]:02X} at column {col}); "
                        "save the file with UTF-8 encoding."
                    )
                    line = raw.decode(codec, errors="replace")
                yield lineno, line
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            if not gz:
                raise
            raise DatasetError(
                f"{where}not a valid gzip file ({e}); decompress it or re-create it with gzip, or drop the .gz suffix."
            ) from None


def _wide_lines(f: IO[bytes], codec: str, where: str) -> Iterator[tuple[int, str]]:
    """Lines of a UTF-16/32 file (with its byte-order mark)."""
    text = io.TextIOWrapper(f, encoding=codec, newline="")
    lineno = 0
    try:
        for lineno, line in enumerate(text, start=1):  # noqa: B007 - lineno is read after the loop on errors
            yield lineno, line
    except UnicodeDecodeError:
        raise DatasetError(
            f"{where}starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()} "
            f"(after line {lineno}); save the file as UTF-8."
        ) from None
    finally:
        text.detach()


def _record_id(value: Any, lineno: int, source: str) -> tuple[str | int, str | None]:
    """A record's id (its line number when absent or empty) or a problem."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return lineno, None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return lineno, f"{at(source, lineno, 'id')}expected a string or an integer, got {kind_of(value)}."
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return lineno, f"{at(source, lineno, 'id')}contains an invalid character (a lone surrogate); remove it."
    return value, None


def _record_of_object(obj: Any, lineno: int, source: str) -> TextRecord | list[str]:
    if not isinstance(obj, dict):
        return [f"{at(source, lineno)}expected a JSON object like {_EXAMPLE}, got {kind_of(obj)}."]
    problems: list[str] = []
    text = record_text(obj, lineno, source, problems)
    record_id, problem = _record_id(obj.get("id"), lineno, source)
    if problem:
        problems.append(problem)
    return problems or TextRecord(record_id, text, lineno)


def _scan_json(path: Path, source: str) -> Iterator[TextRecord | str]:
    problems: list[str] = []
    first = True
    for lineno, line in _lines(path, source, problems):
        yield from problems
        problems.clear()
        if not line.strip():
            continue
        if first and line.lstrip().startswith("["):  # one top-level array: read whole (it cannot be streamed)
            yield from _scan_json_array(path, source)
            return
        first = False
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            yield (
                f"{at(source, lineno)}invalid JSON at column {e.colno}: {_json_message(e)}; each line must be one "
                "complete JSON object (was the line cut off or split over several lines?)."
            )
            continue
        except (ValueError, RecursionError) as e:
            yield f"{at(source, lineno)}invalid JSON ({e}); each line must be one JSON object."
            continue
        found = _record_of_object(value, lineno, source)
        yield from found if isinstance(found, list) else [found]
    yield from problems


def _scan_json_array(path: Path, source: str) -> Iterator[TextRecord | str]:
    lines, problems = read_lines(path, source)
    yield from problems
    for item in _json_array("\n".join(lines), source):
        if isinstance(item, str):
            yield item
            continue
        found = _record_of_object(item[1], item[0], source)
        yield from found if isinstance(found, list) else [found]


def _csv_header(row: list[str], source: str, lineno: int, delimiter: str) -> tuple[dict[str, int], str | None]:
    """Column indices by lower-cased name, or the problem of a header without a ``text`` column."""
    columns: dict[str, int] = {}
    for i, cell in enumerate(row):
        columns.setdefault(cell.strip().lower(), i)
    if "text" in columns:
        return columns, None
    found = ", ".join(repr(c.strip()) for c in row)
    hint = ""
    for sep, shown in {";": "';'", "\t": "tabs", ",": "','"}.items():
        if sep != delimiter and any(sep in c for c in row):
            kind = "a .tsv file must be tab-separated" if delimiter == "\t" else "a .csv file must be comma-separated"
            hint = f" The header seems to use {shown} as the delimiter; {kind}."
            break
    return columns, (
        f"{at(source, lineno, 'header')}missing column 'text'; found columns: {found}. The first row must name the "
        f"column text (and optionally id); other columns are ignored.{hint}"
    )


def _scan_csv(path: Path, source: str, delimiter: str) -> Iterator[TextRecord | str]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    problems: list[str] = []
    reader = csv.reader((line for _, line in _lines(path, source, problems)), delimiter=delimiter, strict=True)
    header: dict[str, int] | None = None
    width = 0
    while True:
        start = reader.line_num + 1
        old_limit = csv.field_size_limit(2**31 - 1)  # a long text is one field; restored before the next yield
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            yield from problems
            yield (
                f"{at(source, start)}malformed {kind} record ({e}); check the quoting: a field that contains "
                'quotes must be quoted and its quotes doubled ("").'
            )
            return
        finally:
            csv.field_size_limit(old_limit)
        yield from problems
        problems.clear()
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header, problem = _csv_header(row, source, start, delimiter)
            if problem:
                yield problem
                return
            width = len(row)
            continue
        if len(row) > width:
            sep = "a tab" if delimiter == "\t" else "a comma"
            yield (
                f"{at(source, start)}the row has {len(row)} fields but the header has {width}; quote fields that "
                f"contain {sep}."
            )
            continue
        found: list[str] = []
        text = ""
        i = header["text"]
        if i >= len(row):
            found.append(f"{at(source, start, 'text')}missing (the row has {len(row)} of {width} fields).")
        else:
            try:
                text = parse_text(row[i])
            except BadValue as e:
                found.append(f"{at(source, start, 'text')}{e}")
        j = header.get("id")
        record_id, problem = _record_id(row[j] if j is not None and j < len(row) else None, start, source)
        if problem:
            found.append(problem)
        yield from found or [TextRecord(record_id, text, start)]
    yield from problems


def _scan_txt(path: Path, source: str) -> Iterator[TextRecord | str]:
    problems: list[str] = []
    for lineno, line in _lines(path, source, problems):
        yield from problems
        problems.clear()
        text = line.strip()
        if text:
            yield TextRecord(lineno, text, lineno)
    yield from problems


def _scan(file: str | Path, source: str | None = None) -> Iterator[TextRecord | str]:
    """Every record of ``file`` in order, or a problem string in its place."""
    path = Path(file)
    source = source or str(file)
    check_path(path, source)
    fmt = format_of(path, TEXT_EXTENSIONS)
    if fmt == ".txt":
        return _scan_txt(path, source)
    if fmt in (".csv", ".tsv"):
        return _scan_csv(path, source, "\t" if fmt == ".tsv" else ",")
    return _scan_json(path, source)


def check_file(file: str | Path, source: str | None = None, max_problems: int = MAX_PROBLEMS_KEPT) -> FileCheck:
    """Validate a file of texts in one streaming pass, without raising: the number of texts and the problems
    (``FILE:LINE: field: message``, the first ``max_problems`` kept, all counted). ``source`` is the name problems
    quote (default: the path), e.g. an upload's own name instead of a server path."""
    source = source or str(file)
    problems: list[str] = []
    found = n_texts = 0
    try:
        for item in _scan(file, source):
            if isinstance(item, str):
                found += 1
                if len(problems) < max_problems:
                    problems.append(item)
            else:
                n_texts += 1
    except DatasetError as e:  # the file cannot be used at all
        found += len(e.problems)
        problems += e.problems[: max(0, max_problems - len(problems))]
    if not n_texts and not found:
        found, problems = 1, [f"{at(source)}no texts found; the file holds only blank lines or an empty array."]
    return FileCheck(source, n_texts, problems, found)


def iter_records(file: str | Path, source: str | None = None) -> Iterator[TextRecord]:
    """The records of a file of texts, read lazily (an iterator: one line in memory at a time). Raises
    ``DatasetError`` at the first problem; run ``check_file`` first to report them all before any work."""
    for item in _scan(file, source):
        if isinstance(item, str):
            raise DatasetError(item, problems=[item])
        yield item


# ---------------------------------------------------------------------------------------------------- predicting
def _chunks(records: Iterable[TextRecord], size: int) -> Iterator[list[TextRecord]]:
    chunk: list[TextRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _row(record: TextRecord, prediction: Any, hierarchy: Any, names: dict[int, str]) -> PredictionRow:
    """``names``: the model's display names by label id; empty when it has none (``display_names`` is then None)."""
    by_path = {tuple(s.path): s.probability for s in prediction.labels}
    probabilities = [round(by_path[tuple(p)], PROBABILITY_DECIMALS) for p in prediction.paths]
    return PredictionRow(
        record.id,
        preview(record.text),
        prediction.paths,
        probabilities,
        prediction.truncated,
        [display_path(hierarchy, hierarchy.index(p), names) for p in prediction.paths] if names else None,
        bool(prediction.below_threshold),
        prediction,
    )


def predict_rows(
    predictor: Any,
    records: Iterable[TextRecord],
    threshold: float = 0.0,
    rule: str = "paper",
    at_least_one: bool = False,
    chunk_size: int = CHUNK_SIZE,
    best: bool = False,
) -> Iterator[PredictionRow]:
    """One ``PredictionRow`` per record, lazily: ``chunk_size`` records at a time go through ``predictor.predict``
    (a ``hpt_core.predict.Predictor``; ``threshold`` is a raw score, ``rule`` a consistency rule; ``best``: a text
    with no label above the threshold gets its best path, flagged ``below_threshold``)."""
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}.")
    h = predictor.hierarchy
    saved = getattr(predictor.model, "label_names", None) or {}
    names = {i: n.name for i, n in label_names_from_dict(saved, h).items()}
    for chunk in _chunks(records, chunk_size):
        predictions = predictor.predict(
            [r.text for r in chunk], threshold=threshold, rule=rule, at_least_one=at_least_one, best=best
        )
        for record, prediction in zip(chunk, predictions, strict=True):
            yield _row(record, prediction, h, names)


# ---------------------------------------------------------------------------------------------------- writing
def output_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` when given, else the format of ``path``'s suffix (``.csv``; ``.jsonl`` or ``.json``)."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"Unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}.")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise ConfigError(
        f"{path}: cannot tell the output format from the suffix {suffix or '(none)'!r}; name the file .csv or "
        ".jsonl, or give the format (--format csv|jsonl)."
    )


def _targets(out: str | Path | Sequence[str | Path], fmt: str | None, overwrite: bool) -> list[tuple[Path, str]]:
    outs = [out] if isinstance(out, (str, Path)) else list(out)
    if not outs:
        raise ConfigError("Give at least one output file.")
    targets = [(Path(o), output_format(o, fmt if len(outs) == 1 else None)) for o in outs]
    for path, _ in targets:
        check_file_target(path, overwrite)
    return targets


class _Writer:
    def __init__(self, f: IO[str], fmt: str) -> None:
        self.f, self.fmt = f, fmt
        if fmt == "csv":
            self.csv = csv.writer(f, lineterminator="\n")
            self.csv.writerow(OUTPUT_COLUMNS)

    def write(self, row: PredictionRow) -> None:
        if self.fmt == "csv":
            self.csv.writerow(row.to_csv())
        else:
            self.f.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")


def write_predictions(
    rows: Iterable[PredictionRow],
    out: str | Path | Sequence[str | Path],
    fmt: str | None = None,
    overwrite: bool = False,
    on_row: Callable[[PredictionRow], None] | None = None,
) -> int:
    """Stream ``rows`` into ``out`` (one file, or several written in the same pass, each in the format of its
    suffix; ``fmt`` overrides it for a single file). Each file appears whole when every row is written, or not at
    all: an error (a bad line met while reading, an interruption) leaves no file and any existing one untouched.
    An existing file is replaced only with ``overwrite``. Returns the number of rows written."""
    targets = _targets(out, fmt, overwrite)
    n = 0
    with ExitStack() as stack:
        writers = [_Writer(stack.enter_context(atomic_file(path, overwrite)), f) for path, f in targets]
        for row in rows:
            for writer in writers:
                writer.write(row)
            n += 1
            if on_row is not None:
                on_row(row)
    return n


def classify_file(
    predictor: Any,
    file: str | Path,
    out: str | Path | Sequence[str | Path],
    fmt: str | None = None,
    *,
    source: str | None = None,
    threshold: float = 0.0,
    rule: str = "paper",
    at_least_one: bool = False,
    chunk_size: int = CHUNK_SIZE,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    keep: int = 0,
    best: bool = False,
) -> ClassifyResult:
    """Classify every text of ``file`` and write the predictions to ``out`` (``write_predictions``).

    The whole file is validated first (``check_file``; ``DatasetError`` lists every problem, nothing is written),
    the output files are checked before any prediction. ``progress(done, total)`` is called after each chunk;
    ``keep`` first rows are returned (for a preview table); ``best`` as in ``predict_rows``."""
    source = source or str(file)
    targets = _targets(out, fmt, overwrite)
    check = check_file(file, source)
    check.raise_if_problems()
    total = check.n_texts
    started = time.perf_counter()
    first: list[PredictionRow] = []
    tops: Counter[str] = Counter()
    counts = {"done": 0, "empty": 0, "truncated": 0}
    if progress is not None:
        progress(0, total)

    def on_row(row: PredictionRow) -> None:
        counts["done"] += 1
        counts["empty"] += not row.paths or row.below_threshold
        counts["truncated"] += row.truncated
        tops.update({p[0] for p in row.paths})
        if len(first) < keep:
            first.append(row)
        if progress is not None and (counts["done"] % chunk_size == 0 or counts["done"] == total):
            progress(counts["done"], total)

    rows = predict_rows(predictor, iter_records(file, source), threshold, rule, at_least_one, chunk_size, best)
    n = write_predictions(rows, [p for p, _ in targets] if len(targets) > 1 else targets[0][0], fmt, overwrite, on_row)
    return ClassifyResult(
        source=source,
        n_texts=n,
        outputs=[p for p, _ in targets],
        first_rows=first,
        n_without_label=counts["empty"],
        n_truncated=counts["truncated"],
        top_labels=dict(tops.most_common()),
        seconds=time.perf_counter() - started,
    )
