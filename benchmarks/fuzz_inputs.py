"""Malformed and edge-case data files for the reliability benchmark: a seeded, deterministic corpus.

Each ``Case`` is a data file (name and bytes), an optional hierarchy file, and what a good answer must contain: the
line a problem must name (``line``), or ``valid=True`` when the file is fine. Families cover the issue's list:
encodings, binary and empty files, truncated JSON lines, missing/extra fields, empty texts, wrong types, paths deeper
than the hierarchy, labels missing from a hierarchy file, broken hierarchy files (cycles, two parents, self-loops),
duplicate names on different levels, 10,000 labels, a single label, a label without documents, CSV quoting, very
long lines, odd file names, and seeded random byte/character mutations of a valid file.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass

__all__ = ["Case", "malformed_cases"]

GOOD = [
    {"text": "Deep networks for image segmentation of retinal scans", "labels": [["CS", "Computer vision"]]},
    {"text": "Randomised trial of a new statin for heart disease", "labels": [["Medical", "Cardiology"]]},
    {"text": "Graph kernels for learning on molecules", "labels": [["CS", "Machine learning"]]},
    {"text": "Outcomes of knee surgery in young athletes", "labels": [["Medical", "Sports Injuries"]]},
]
TREE = "Root\tCS\tMedical\nCS\tComputer vision\tMachine learning\nMedical\tCardiology\tSports Injuries\n"


@dataclass
class Case:
    """One input: ``data`` saved as ``name`` (and ``hierarchy`` as ``tree.taxonomy`` when given)."""

    family: str
    name: str
    data: bytes
    hierarchy: bytes | None = None
    line: int | None = None  # a problem must name this line of ``name`` (None: file-level or no problem)
    valid: bool = False  # the file has no problem at all


def _jsonl(records: list[object]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n").encode()


def _families(rng: random.Random) -> list[Case]:
    good = _jsonl(GOOD)
    cases = [
        # encodings
        Case("encoding", "utf16.jsonl", _jsonl(GOOD).decode().encode("utf-16"), valid=True),
        Case("encoding", "utf16-no-bom.jsonl", _jsonl(GOOD).decode().encode("utf-16-le")),
        Case("encoding", "utf8-bom.jsonl", b"\xef\xbb\xbf" + good, valid=True),
        Case("encoding", "utf32.jsonl", _jsonl(GOOD).decode().encode("utf-32"), valid=True),
        Case(
            "encoding",
            "latin1.jsonl",
            good + json.dumps({"text": "café résumé", "labels": [["CS"]]}, ensure_ascii=False).encode("latin-1"),
            line=5,
        ),
        Case("encoding", "utf16-broken.jsonl", b"\xff\xfe" + b"a\x00b", valid=False),
        # binary and empty
        Case("binary", "image.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(400))),
        Case("binary", "archive.csv", b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(200))),
        Case("binary", "gzipped.jsonl", gzip.compress(good)),
        Case("binary", "bad.jsonl.gz", b"not really gzip"),
        Case("binary", "nul.tsv", b"text\tlabels\nabc\x00def\tCS\n"),
        Case("empty", "empty.jsonl", b""),
        Case("empty", "blank.csv", b"\n\n   \n"),
        Case("empty", "header-only.csv", b"text,labels\n"),
        Case("empty", "empty-array.json", b"[]"),
        # truncated JSON
        Case("truncated", "truncated.jsonl", good + b'{"text": "cut here", "labels": [["CS"', line=5),
        Case("truncated", "truncated-middle.jsonl", _jsonl(GOOD[:2]) + b'{"text": "x"\n' + _jsonl(GOOD[2:]), line=3),
        Case("truncated", "truncated.json", b'[{"text": "a", "labels": [["CS"]]}, {"text": '),
        # fields
        Case("fields", "no-text.jsonl", good + _jsonl([{"labels": [["CS"]]}]), line=5),
        Case("fields", "no-labels.jsonl", good + _jsonl([{"text": "orphan text"}]), line=5),
        Case("fields", "null-labels.jsonl", good + _jsonl([{"text": "t", "labels": None}]), line=5),
        Case("fields", "extra-field.jsonl", _jsonl([{**GOOD[0], "colour": "blue"}] + GOOD[1:])),
        Case("fields", "not-an-object.jsonl", good + b'["just", "a", "list"]\n', line=5),
        Case("fields", "csv-missing-column.csv", b"text\nonly text here\n"),
        Case("fields", "csv-extra-cells.csv", b"text,labels\nfirst,CS > Computer vision,surplus\n", line=2),
        # empty texts and wrong types
        Case("text", "empty-text.jsonl", good + _jsonl([{"text": "", "labels": [["CS"]]}]), line=5),
        Case("text", "space-text.jsonl", good + _jsonl([{"text": "   \t ", "labels": [["CS"]]}]), line=5),
        Case("types", "number-text.jsonl", good + _jsonl([{"text": 42, "labels": [["CS"]]}]), line=5),
        # a list of strings is a token list (the HPT format's doc_token), joined with spaces: valid
        Case("types", "list-text.jsonl", good + _jsonl([{"text": ["a", "b"], "labels": [["CS"]]}]), valid=True),
        Case("types", "list-of-numbers-text.jsonl", good + _jsonl([{"text": [1, 2], "labels": [["CS"]]}]), line=5),
        Case("types", "number-labels.jsonl", good + _jsonl([{"text": "t", "labels": 7}]), line=5),
        Case("types", "dict-labels.jsonl", good + _jsonl([{"text": "t", "labels": {"a": 1}}]), line=5),
        Case("types", "nested-numbers.jsonl", good + _jsonl([{"text": "t", "labels": [[1, 2]]}]), line=5),
        Case("types", "empty-path.jsonl", good + _jsonl([{"text": "t", "labels": [[]]}]), line=5),
        Case("types", "bool-split.jsonl", good + _jsonl([{"text": "t", "labels": [["CS"]], "split": True}]), line=5),
        # hierarchy file against the data
        Case(
            "hierarchy",
            "too-deep.jsonl",
            good + _jsonl([{"text": "t", "labels": [["CS", "Computer vision", "Deeper"]]}]),
            TREE.encode(),
            line=5,
        ),
        Case(
            "hierarchy",
            "unknown-label.jsonl",
            good + _jsonl([{"text": "t", "labels": [["Physics", "Optics"]]}]),
            TREE.encode(),
            line=5,
        ),
        Case("hierarchy", "cycle.jsonl", good, b"Root\tCS\nCS\tA\nA\tB\nB\tA\n"),
        Case("hierarchy", "two-parents.jsonl", good, b"Root\tCS\tMedical\nCS\tShared\nMedical\tShared\n"),
        Case("hierarchy", "self-loop.jsonl", good, b"Root\tCS\nCS\tCS\n"),
        Case("hierarchy", "root-child.jsonl", good, b"Root\tCS\nCS\tRoot\n"),
        Case("hierarchy", "binary-tree.jsonl", good, b"\x00\x01\x02\x03"),
        Case("hierarchy", "lonely-parent.jsonl", good, b"Root\tCS\nCS\nMedical\tCardiology\n"),
        Case("hierarchy", "latin1-tree.jsonl", good, "Root\tCS\tMédical\n".encode("latin-1")),
        Case(
            "hierarchy",
            "same-name-two-levels.jsonl",
            _jsonl([{"text": "t", "labels": [["Data", "Data"]]}, {"text": "u", "labels": [["Data", "Other"]]}]),
            valid=True,
        ),
        Case("hierarchy", "unused-label.jsonl", good, (TREE + "CS\tRobotics\n").encode(), valid=True),
        # sizes
        Case(
            "size",
            "ten-thousand-labels.jsonl",
            _jsonl([{"text": f"document {i}", "labels": [[f"top{i % 50}", f"leaf{i}"]]} for i in range(10_000)]),
            valid=True,
        ),
        Case("size", "one-label.jsonl", _jsonl([{"text": "only one", "labels": [["Solo"]]}]), valid=True),
        Case("size", "long-line.jsonl", _jsonl([{"text": "word " * 200_000, "labels": [["CS"]]}]), valid=True),
        Case(
            "size", "many-paths.jsonl", _jsonl([{"text": "t", "labels": [[f"L{i}"] for i in range(300)]}]), valid=True
        ),
        # CSV quoting
        Case(
            "csv", "quoted.csv", b'text,labels\n"a, quoted ""text""\nover two lines",CS > Computer vision\n', valid=True
        ),
        Case("csv", "unterminated.csv", b'text,labels\nfine,CS\n"never closed,CS\nlast,CS\n', line=3),
        Case("csv", "semicolons.csv", b"text,labels\nboth,CS > Computer vision; Medical > Cardiology\n", valid=True),
        Case("csv", "tabs.tsv", b"text\tlabels\nfine\tCS > Machine learning\nbroken\t\n", line=3),
        Case("csv", "wrong-delimiter.csv", b"text;labels\nfine;CS\n"),
        # odd names
        Case("names", "../escape.jsonl", good, valid=True),
        Case("names", "with space & ümlaut.jsonl", good, valid=True),
        Case("names", "no-extension", good),
        Case("names", "data.xlsx", good),
        Case("names", "<script>x.jsonl", good, valid=True),
        Case(
            "names",
            "html-label.jsonl",
            _jsonl([{"text": "t", "labels": [["<img src=x onerror=alert(1)", "c"]]}]),
            valid=True,
        ),
    ]
    return cases


def _mutations(rng: random.Random, n: int) -> list[Case]:
    """Seeded random edits of a valid JSONL file: a deleted, inserted or replaced character, or random bytes."""
    base = _jsonl(GOOD)
    out = []
    for k in range(n):
        data = bytearray(base)
        kind = rng.choice(["delete", "insert", "replace", "bytes", "swap-quote"])
        pos = rng.randrange(len(data))
        if kind == "delete":
            del data[pos]
        elif kind == "insert":
            data[pos:pos] = bytes([rng.choice(b'{}[]",:\\\n\t x\x00\xff')])
        elif kind == "replace":
            data[pos] = rng.randrange(256)
        elif kind == "bytes":
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        else:
            quotes = [i for i, b in enumerate(data) if b == ord('"')]
            data[rng.choice(quotes)] = ord("'")
        # a mutation may leave the file valid (e.g. inside a text); otherwise its problems must name the file
        out.append(Case(f"mutation-{kind}", f"mutated-{k:03d}.jsonl", bytes(data)))
    return out


def malformed_cases(seed: int = 0, mutations: int = 150) -> list[Case]:
    """The fixed families plus ``mutations`` seeded random edits (at least 200 inputs with the default)."""
    rng = random.Random(seed)
    return _families(rng) + _mutations(rng, mutations)
