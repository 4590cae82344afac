"""Bad input never crashes anything: property-based fuzzing of the validator, and the reliability benchmark's quick
mode (malformed files through the CLI and the app, concurrent clients during training, injected faults)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpt_core.cli import main
from hpt_core.data import ValidationReport, load_dataset, validate
from hpt_core.errors import HPTError

FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=8), max_size=3),
    st.lists(st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
RECORD = st.dictionaries(
    st.sampled_from(["text", "labels", "label", "split", "doc_token", "doc_label", "x"]), FIELD_VALUES
)
LINE = st.one_of(
    RECORD.map(json.dumps), st.text(max_size=60), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
)
SUFFIX = st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".jsonl.gz", ".txt"])
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(path: Path) -> None:
    report = validate(path)  # never raises: every problem goes into the report
    assert isinstance(report, ValidationReport)
    assert all(path.name in p for p in report.problems), report.problems[:3]
    try:
        load_dataset(path)
    except HPTError as e:  # our own error types only, naming the file
        assert path.name in str(e)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    assert code in (0, 2) and "Traceback" not in err.getvalue()
    assert (code == 0) == report.ok()


@FUZZ
@given(lines=st.lists(LINE, max_size=6), suffix=SUFFIX)
def test_random_lines_get_a_report_or_our_error(tmp_path: Path, lines: list[str], suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    data = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    if suffix.endswith(".gz"):
        import gzip

        data = gzip.compress(data)
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(data=st.binary(max_size=300), suffix=SUFFIX)
def test_random_bytes_get_a_report_or_our_error(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"bytes{suffix}"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=4), max_size=5))
def test_random_hierarchy_files_raise_only_our_errors(tmp_path: Path, rows: list[list[str]]) -> None:
    from hpt_core.hierarchy import LabelHierarchy

    tree = tmp_path / "tree.taxonomy"
    tree.write_text("\n".join("\t".join(r) for r in rows), encoding="utf-8", errors="surrogatepass")
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"text": "a text", "labels": [["A"]]}) + "\n", encoding="utf-8")
    try:
        LabelHierarchy.from_taxonomy(tree)
    except HPTError as e:
        assert "tree.taxonomy" in str(e) or "hierarchy" in str(e).lower()
    report = validate(data, hierarchy_file=tree)
    assert isinstance(report, ValidationReport)


def test_the_fixed_malformed_corpus_through_the_cli(tmp_path: Path) -> None:
    from benchmarks.fuzz_inputs import malformed_cases
    from benchmarks.reliability import fuzz_cli

    cases = malformed_cases(seed=0, mutations=40)
    results = fuzz_cli(cases, tmp_path)
    assert len(results) >= 100
    assert [r for r in results if r["crash"]] == []
    assert [r for r in results if r["unclear"]] == []


@pytest.mark.slow  # minutes: the whole quick benchmark, with a launched app
def test_reliability_quick_mode(tmp_path: Path) -> None:
    """The whole benchmark in quick mode: fuzzing through the CLI and the launched app, concurrent /predict calls
    during a fine-tune job, and the injected faults."""
    from benchmarks.reliability import main as reliability

    out = tmp_path / "reliability.json"
    assert reliability(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["fuzzed_inputs"] >= 200
    assert result["crashes"] == 0 and result["unclear_errors"] == 0, result["unclear_examples"]
    assert result["concurrent_errors"] == 0 and result["training_ran_throughout"]
    assert result["second_train_refused"]
    assert result["faults_survived"] == result["faults_injected"] == 4, result["faults"]
    assert result["models_lost"] == 0
