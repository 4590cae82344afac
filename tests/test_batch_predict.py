"""Tests of hpt_core.batch_predict: files of texts in (CSV/TSV/JSONL/TXT, streamed, every problem as FILE:LINE), rows
of predictions out (CSV and JSONL with the same columns and values), written atomically.

Texts are real WOS abstracts from ``assets/wos-1k``; predictions come from a tiny HPT model (tests/conftest.py).
"""

from __future__ import annotations

import csv
import gzip
import inspect
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hpt_core.batch_predict import (
    OUTPUT_COLUMNS,
    PREVIEW_CHARS,
    TextRecord,
    check_file,
    classify_file,
    iter_records,
    output_format,
    predict_rows,
    preview,
    write_predictions,
)
from hpt_core.errors import ConfigError, DatasetError
from hpt_core.predict import Predictor

REPO = Path(__file__).resolve().parents[1]
WOS = REPO / "assets" / "wos-1k" / "wos_total_1k.json"
EVERY_LABEL = -1e9  # a raw-score threshold every label passes: every path is predicted


@pytest.fixture(scope="module")
def wos_texts() -> list[str]:
    """The first 12 real WOS abstracts."""
    with open(WOS, encoding="utf-8") as f:
        return [json.loads(line)["doc_token"] for line in itertools.islice(f, 12)]


@pytest.fixture
def predictor(make_model) -> Predictor:
    return Predictor(make_model(), batch_size=4)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------------- reading
def test_reads_csv_tsv_jsonl_and_txt(tmp_path: Path, wos_texts: list[str]) -> None:
    a, b, c = wos_texts[:3]
    table = tmp_path / "texts.csv"
    with open(table, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerows(
            [["ID", "labels", "text"], ["doc-a", "CS", a], ["", "CS", "first line\nsecond line"], ["c", "", c]]
        )
    records = list(iter_records(table))
    assert [r.id for r in records] == ["doc-a", 3, "c"]  # an empty id becomes the line number
    assert [r.line for r in records] == [2, 3, 5]  # the quoted text spans lines 3 and 4
    assert records[0].text == a and records[1].text == "first line\nsecond line"

    tsv = tmp_path / "texts.tsv"
    tsv.write_text(f"text\n{a}\n\n{b}\n", encoding="utf-8")
    assert [(r.id, r.text) for r in iter_records(tsv)] == [(2, a), (4, b)]  # no id column: line numbers
    tsv.write_text(f"id\ttext\r\nnaïve\t{a}\r\n", encoding="utf-16")  # Excel's "Unicode text": UTF-16 with a BOM
    assert [(r.id, r.text) for r in iter_records(tsv)] == [("naïve", a)]

    jsonl = tmp_path / "texts.jsonl"
    lines = [
        json.dumps({"id": 7, "text": a}),
        "",
        json.dumps({"text": b, "labels": "ignored"}),
        json.dumps({"id": "x", "text": c}),
    ]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [(r.id, r.text, r.line) for r in iter_records(jsonl)] == [(7, a, 1), (3, b, 3), ("x", c, 4)]

    txt = tmp_path / "texts.txt.gz"
    with gzip.open(txt, "wt", encoding="utf-8") as f:
        f.write(f"{a}\n\n  {b}  \n")
    assert [(r.id, r.text) for r in iter_records(txt)] == [(1, a), (3, b)]

    # the HPT format of the shipped WOS subset: doc_token texts, ids are line numbers
    check = check_file(WOS)
    assert check.ok and check.n_texts == 1000
    assert next(iter_records(WOS)) == TextRecord(1, wos_texts[0], 1)


def test_problems_name_the_file_line_and_field(tmp_path: Path, wos_texts: list[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"text": wos_texts[0]})
        + "\n"
        + '{"text": "cut off\n'
        + json.dumps({"text": "  "})
        + "\n"
        + json.dumps({"body": wos_texts[1]})
        + "\n"
        + json.dumps({"id": [1], "text": wos_texts[2]})
        + "\n",
        encoding="utf-8",
    )
    check = check_file(bad)
    assert not check.ok and check.n_texts == 1 and check.problems_found == 4
    assert [p.split(": ")[0] for p in check.problems] == [f"{bad}:{n}" for n in (2, 3, 4, 5)]
    assert "invalid JSON" in check.problems[0]
    assert check.problems[1].startswith(f"{bad}:3: text: the text is empty")
    assert check.problems[2].startswith(f"{bad}:4: text: missing") and "'body'" in check.problems[2]
    assert check.problems[3].startswith(f"{bad}:5: id: expected a string or an integer")
    with pytest.raises(DatasetError, match="4 problems found") as error:
        check.raise_if_problems()
    assert error.value.problems == check.problems
    records = iter_records(bad)
    assert next(records).line == 1  # the good first line comes out before the bad second one is read
    with pytest.raises(DatasetError, match=f"{bad}:2: invalid JSON"):
        next(records)

    header = tmp_path / "columns.csv"
    header.write_text("title,body\nA study,of things\n", encoding="utf-8")
    [problem] = check_file(header, source="upload.csv").problems  # ``source`` names the file in messages
    assert problem.startswith("upload.csv:1: header: missing column 'text'; found columns: 'title', 'body'.")

    empty_text = tmp_path / "empty.csv"
    empty_text.write_text(f"id,text\n1,{wos_texts[0][:50]}\n2,\n", encoding="utf-8")
    assert check_file(empty_text).problems == [
        f"{empty_text}:3: text: the text is empty; remove the record or fill in its text."
    ]

    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 au lait\n" + wos_texts[0].encode())
    assert check_file(latin).problems[0].startswith(f"{latin}:1: not valid UTF-8 (byte 0xE9 at column 4)")

    for name, content, needle in [
        ("none.txt", None, "does not exist"),
        ("blank.txt", "\n\n", "the file is empty"),
        ("texts.xlsx", "x", "unsupported file type '.xlsx'"),
    ]:
        path = tmp_path / name
        if content is not None:
            path.write_text(content, encoding="utf-8")
        assert needle in check_file(path).problems[0]


def test_streaming_a_100k_line_file(tmp_path: Path, wos_texts: list[str], predictor: Predictor) -> None:
    """A 100,000-line file is read and predicted lazily: an iterator, one chunk of records pulled at a time."""
    big = tmp_path / "big.txt"
    snippets = [" ".join(t.split()[:12]) for t in wos_texts]
    with open(big, "w", encoding="utf-8") as f:
        f.writelines(f"{snippets[k % len(snippets)]}\n" for k in range(100_000))
    records = iter_records(big)
    assert isinstance(records, Iterator) and inspect.isgenerator(records)
    assert next(records) == TextRecord(1, snippets[0], 1)
    assert check_file(big).n_texts == 100_000  # one streaming pass over the whole file

    pulled = 0

    def counted() -> Iterator[TextRecord]:
        nonlocal pulled
        for record in iter_records(big):
            pulled += 1
            yield record

    rows = predict_rows(predictor, counted(), chunk_size=32)
    assert isinstance(rows, Iterator)
    first = list(itertools.islice(rows, 40))
    assert pulled == 64  # two chunks read of 100,000 lines
    assert [row.id for row in first] == list(range(1, 41))


# ---------------------------------------------------------------------------------------------------- writing
def test_rows_and_both_formats_agree(tmp_path: Path, wos_texts: list[str], predictor: Predictor) -> None:
    records = [TextRecord(f"d{k}", text, k + 1) for k, text in enumerate(wos_texts[:5])]
    records.append(TextRecord("short", "genetics results", 6))
    csv_out, jsonl_out = tmp_path / "p.csv", tmp_path / "p.jsonl"
    n = write_predictions(predict_rows(predictor, records, threshold=EVERY_LABEL, chunk_size=4), [csv_out, jsonl_out])
    assert n == 6
    as_csv, as_json = _csv_rows(csv_out), _jsonl_rows(jsonl_out)
    assert tuple(as_csv[0]) == OUTPUT_COLUMNS and all(tuple(row) == OUTPUT_COLUMNS for row in as_json)
    expected = predictor.predict([r.text for r in records], threshold=EVERY_LABEL, all_scores=True)
    for record, c, j, pred in zip(records, as_csv, as_json, expected, strict=True):
        assert c["id"] == j["id"] == record.id
        assert j["text_preview"] == c["text_preview"] == preview(record.text)
        assert len(j["text_preview"]) <= PREVIEW_CHARS and "\n" not in j["text_preview"]
        assert j["paths"] == pred.paths and len(j["paths"]) == 7  # every label passes: all 7 end paths
        assert c["paths"] == "; ".join(" > ".join(p) for p in pred.paths)
        by_path = {tuple(s.path): s.probability for s in pred.scores}
        assert j["probabilities"] == [round(by_path[tuple(p)], 4) for p in pred.paths]
        assert [float(p) for p in c["probabilities"].split("; ")] == j["probabilities"]
        assert all(0 < p < 1 for p in j["probabilities"])  # probabilities (sigmoid), not raw scores
        assert c["truncated"] == str(j["truncated"]).lower() and j["truncated"] == pred.truncated
    assert as_json[0]["truncated"] is True and as_json[-1]["truncated"] is False  # abstracts exceed 128 tokens
    assert as_json[0]["text_preview"].endswith("…") and as_json[-1]["text_preview"] == "genetics results"
    # the paper's rule with a high threshold: no label, empty cells and lists
    [row] = predict_rows(predictor, records[:1], threshold=1e9)
    assert row.paths == [] and row.probabilities == [] and row.to_csv()[2:4] == ["", ""] and not row.below_threshold


def test_output_format_from_suffix_or_flag() -> None:
    assert (
        output_format("a.CSV") == "csv" and output_format("a.jsonl") == "jsonl" and output_format("a.json") == "jsonl"
    )
    assert output_format("predictions.txt", "csv") == "csv"
    with pytest.raises(ConfigError, match="cannot tell the output format"):
        output_format("predictions.txt")
    with pytest.raises(ConfigError, match="Unknown output format 'xml'"):
        output_format("a.csv", "xml")


def test_nothing_is_written_on_error_and_nothing_overwritten(tmp_path: Path, wos_texts: list[str], predictor) -> None:
    out = tmp_path / "out" / "predictions.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text(f'text\n{wos_texts[0][:80]}\n"unclosed quote\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="bad.csv:3: malformed CSV record"):
        classify_file(predictor, bad, out)
    assert not out.exists()

    def failing() -> Iterator:
        yield from predict_rows(predictor, [TextRecord(1, wos_texts[0], 1), TextRecord(2, wos_texts[1], 2)])
        raise DatasetError("texts.txt:3: the file changed while it was read")

    with pytest.raises(DatasetError, match="changed"):
        write_predictions(failing(), out)
    assert list(out.parent.iterdir()) == []  # no half-written file, no temporary file

    good = tmp_path / "good.txt"
    good.write_text("\n".join(wos_texts[:3]) + "\n", encoding="utf-8")
    out.write_text("my earlier results\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists"):
        classify_file(predictor, good, out)
    with pytest.raises(DatasetError):
        write_predictions(failing(), out, overwrite=True)
    assert out.read_text(encoding="utf-8") == "my earlier results\n"  # a failed overwrite keeps the old file
    classify_file(predictor, good, out, overwrite=True)
    assert [row["id"] for row in _csv_rows(out)] == ["1", "2", "3"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv"]


def test_classify_file_reports_progress_and_keeps_first_rows(tmp_path: Path, wos_texts: list[str], predictor) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"id": f"w{k}", "text": t}) + "\n" for k, t in enumerate(wos_texts)), "utf-8")
    calls: list[tuple[int, int]] = []
    raw = predictor.scores(wos_texts)
    threshold = float(np.median(raw))  # about half the labels pass
    result = classify_file(
        predictor,
        data,
        tmp_path / "out.jsonl",
        source="upload.jsonl",
        threshold=threshold,
        chunk_size=5,
        keep=3,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(0, 12), (5, 12), (10, 12), (12, 12)]
    assert result.n_texts == 12 and result.source == "upload.jsonl" and result.outputs == [tmp_path / "out.jsonl"]
    assert [row.id for row in result.first_rows] == ["w0", "w1", "w2"]
    rows = _jsonl_rows(tmp_path / "out.jsonl")
    assert result.n_without_label == sum(not r["paths"] for r in rows)
    assert result.top_labels == {
        top: sum(top in {p[0] for p in r["paths"]} for r in rows) for top in {p[0] for r in rows for p in r["paths"]}
    }
    assert result.n_truncated == 12  # every abstract is longer than the tiny model's 128 tokens


def test_csv_cells_that_a_spreadsheet_would_run_are_made_inert():
    from hpt_core.batch_predict import PredictionRow

    row = PredictionRow(id="=1+1", text_preview='=HYPERLINK("http://x")', paths=[["-a", "b"]], probabilities=[0.5])
    cells = row.to_csv()
    assert cells[:3] == ["'=1+1", '\'=HYPERLINK("http://x")', "'-a > b"]
    assert row.to_json()["text_preview"] == '=HYPERLINK("http://x")'  # JSONL keeps the text as it is


def test_rows_carry_display_names_and_the_best_path_below_the_threshold(
    tmp_path: Path, wos_texts: list[str], make_backbone, tiny_tokenizer, tiny_tree
) -> None:
    from hpt_core.label_names import LabelName
    from hpt_core.model import HPTConfig, HPTModel

    top = tiny_tree.children(None)[0]
    named = {top: LabelName("Readable top label")}
    model = HPTModel(HPTConfig(max_length=128), tiny_tree, make_backbone(0), tiny_tokenizer, named)
    predictor = Predictor(model, batch_size=4)
    records = [TextRecord(k + 1, text, k + 1) for k, text in enumerate(wos_texts[:4])]
    every = list(predict_rows(predictor, records, threshold=EVERY_LABEL))
    for row in every:  # the same paths, the named label under its display name, every other under its own name
        assert len(row.shown_paths) == len(row.paths) and not row.below_threshold
        for path, shown in zip(row.paths, row.shown_paths, strict=True):
            assert shown == [
                "Readable top label" if k == 0 and n == tiny_tree.name(top) else n for k, n in enumerate(path)
            ]
    assert any(shown[0] == "Readable top label" for row in every for shown in row.shown_paths)

    out = tmp_path / "best.jsonl"
    texts = _texts_file(tmp_path, wos_texts[:4])
    result = classify_file(predictor, texts, [out, tmp_path / "best.csv"], threshold=1e9, best=True)
    rows, as_csv = _jsonl_rows(out), _csv_rows(tmp_path / "best.csv")
    assert result.n_without_label == 4  # nothing passes 1e9; each text shows its best path instead, flagged
    for j, c in zip(rows, as_csv, strict=True):
        assert j["below_threshold"] is True and c["below_threshold"] == "true"
        assert len(j["paths"][0]) == len(j["display_names"][0])
        assert len(j["paths"]) == 1 and len(j["display_names"]) == 1 and len(j["probabilities"]) == 1
        assert c["display_names"] == " > ".join(j["display_names"][0])
    plain = classify_file(predictor, texts, tmp_path / "plain.jsonl", threshold=1e9)
    assert plain.n_without_label == 4
    assert all(r["paths"] == [] and r["below_threshold"] is False for r in _jsonl_rows(tmp_path / "plain.jsonl"))


def _texts_file(tmp_path: Path, texts: list[str]) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(" ".join(t.split()) for t in texts) + "\n", encoding="utf-8")
    return path
