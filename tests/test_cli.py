"""Tests of the command line (``python -m hpt_core``): the JSON contracts end to end and exit 2 on user errors.

The end-to-end flow trains the real default backbone (the shipped re-warmed MiniLM, ``minilm-l6-mlm``) once for 3
steps on a 200-document WOS slice (module-scoped fixture) and reuses that checkpoint for evaluate, predict and
explain. Error cases run in-process through ``main([...])``; one subprocess proves that ``python -m hpt_core`` works.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hpt_core.device as device_module
from hpt_core.cli import main

N_DOCS = 200
REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "hierarchy.json",
    "metrics.json",
    "README.md",
    "tokenizer_config.json",
    "train_config.json",
)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout/stderr captured (for module-scoped fixtures, where capsys is unavailable)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def call(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process; argparse errors (``SystemExit``) are turned into their exit status."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, out: str, err: str, *needles: str) -> str:
    """Exit 2, nothing on stdout, no traceback, and exactly one ``error:`` line that mentions every needle."""
    assert code == 2, (code, err)
    assert out == ""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def taxonomy(shared_dir: Path) -> Path:
    return shared_dir / "data" / "wos" / "wos.taxnomy"


@pytest.fixture(scope="module")
def wos_slice(shared_dir: Path, workdir: Path) -> Path:
    """The first 200 lines of the shipped 1k WOS subset, as a JSONL file."""
    source = shared_dir / "data" / "wos" / "subset_1k" / "wos_total_1k.json"
    with open(source, encoding="utf-8") as f:
        lines = [next(f) for _ in range(N_DOCS)]
    path = workdir / "wos200.json"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(wos_slice: Path, taxonomy: Path, workdir: Path) -> dict:
    """Train the real default backbone once: 3 steps, batch 8, 64 tokens."""
    out_dir = workdir / "ckpt"
    code, out, err = run_main(
        [
            "train",
            "--data",
            str(wos_slice),
            "--hierarchy",
            str(taxonomy),
            "--out",
            str(out_dir),
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--max-length",
            "64",
        ]
    )
    if code != 0 and "Cannot load backbone" in err:
        pytest.skip(f"default backbone unavailable: {err.strip()}")
    return {"code": code, "out": out, "err": err, "dir": out_dir}


@pytest.fixture(scope="module")
def tiny_backbone_dir(save_tiny_backbone) -> Path:
    """A tiny BERT masked LM saved as a local backbone directory (64 positions), for cheap training runs."""
    return save_tiny_backbone(max_position_embeddings=64)


# ------------------------------------------------------------------------------------------------ validate
def test_validate_summary(capsys, wos_slice, taxonomy):
    code, out, err = call(capsys, ["validate", wos_slice, "--hierarchy", taxonomy])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_documents"] == N_DOCS
    assert summary["problems_found"] == 0 and summary["problems"] == [] and summary["ok"] is True
    assert summary["n_labels"] == 141 and summary["labels_per_depth"] == [7, 134]
    counts = summary["label_counts"]
    assert len(counts) == 141
    top = [name for name in counts if " > " not in name]
    assert sum(counts[name] for name in top) == N_DOCS  # one domain per document
    assert "Traceback" not in err


@pytest.mark.slow  # a fresh interpreter imports torch and trains
def test_module_entry_point_in_a_subprocess(wos_slice, taxonomy):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "hpt_core", "validate", str(wos_slice), "--hierarchy", str(taxonomy)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_documents"] == N_DOCS
    assert "Traceback" not in proc.stderr


def test_validate_lists_bad_lines(capsys, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"doc_token": "a good text", "doc_label": ["CS", "Machine learning"]}\n'
        "this is not json\n"
        '{"doc_token": "", "doc_label": ["CS", "Machine learning"]}\n'
        '{"doc_token": "no labels here"}\n',
        encoding="utf-8",
    )
    code, out, err = call(capsys, ["validate", data])
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert [line.split(": ")[0] for line in lines[:3]] == [f"{data}:2", f"{data}:3", f"{data}:4"]
    assert "3 problem(s) found" in lines[-1]


def test_validate_caps_the_problem_list(capsys, tmp_path):
    data = tmp_path / "many.jsonl"
    data.write_text("".join("{broken\n" for _ in range(25)), encoding="utf-8")
    code, out, err = call(capsys, ["validate", data])
    assert code == 2 and out == ""
    lines = err.splitlines()
    listed = [line for line in lines if line.startswith(f"{data}:") and line.split(":")[1].isdigit()]
    assert len(listed) == 20
    assert "... and 5 more problem(s)." in lines
    assert "25 problem(s) found" in lines[-1]


def test_validate_unknown_label_against_hierarchy(capsys, tmp_path, taxonomy):
    data = tmp_path / "unknown.jsonl"
    data.write_text(
        '{"doc_token": "fine", "doc_label": ["CS", "Machine learning"]}\n'
        '{"doc_token": "cooking", "doc_label": ["CS", "Quantum cooking"]}\n',
        encoding="utf-8",
    )
    code, out, err = call(capsys, ["validate", data, "--hierarchy", taxonomy])
    assert code == 2 and out == ""
    assert f"{data}:2: " in err and "'Quantum cooking'" in err
    assert "Traceback" not in err


def test_validate_missing_file(capsys, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    code, out, err = call(capsys, ["validate", missing])
    assert code == 2 and out == ""
    assert "does not exist" in err.splitlines()[0]
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------------------ end to end
def test_train_writes_checkpoint_and_prints_metrics(trained):
    assert trained["code"] == 0, trained["err"]
    assert "Traceback" not in trained["err"]
    folder: Path = trained["dir"]
    for name in CHECKPOINT_FILES:
        assert (folder / name).is_file(), name
    assert (folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()
    metrics = json.loads(trained["out"])
    for split in ("dev", "test"):
        assert 0.0 <= metrics[split]["micro_f1"] <= 1.0
        assert 0.0 <= metrics[split]["macro_f1"] <= 1.0
        assert "per_label" not in metrics[split]  # the long per-label table stays in metrics.json
    assert metrics["training"]["steps"] == 3
    assert (
        metrics["training"]["train_documents"]
        + metrics["training"]["dev_documents"]
        + metrics["training"]["test_documents"]
        == N_DOCS
    )
    saved = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert len(saved["test"]["per_label"]) == 141
    provenance = json.loads((folder / "train_config.json").read_text(encoding="utf-8"))
    assert provenance["max_steps"] == 3 and provenance["batch_size"] == 8 and provenance["variant"] == "hpt"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["hpt_config"]["max_length"] == 64 and config["num_labels"] == 141
    assert config["hpt_config"]["backbone"] == "minilm-l6-mlm"  # the default training backbone
    assert "step 3" in trained["err"]  # progress goes to stderr


def test_evaluate_json(capsys, trained, wos_slice, taxonomy):
    code, out, err = call(capsys, ["evaluate", "--model", trained["dir"], "--data", wos_slice, "--hierarchy", taxonomy])
    assert code == 0, err
    report = json.loads(out)
    assert report["n_documents"] == N_DOCS
    assert 0.0 <= report["micro_f1"] <= 1.0 and 0.0 <= report["macro_f1"] <= 1.0
    assert set(report["per_depth"]) == {"0", "1"}
    for depth in ("0", "1"):
        assert {"micro_f1", "macro_f1"} <= set(report["per_depth"][depth])
        assert 0.0 <= report["per_depth"][depth]["macro_f1"] <= 1.0
    assert "micro-F1" in err  # the human summary goes to stderr


def test_train_newsgroups_stripped_fp16_and_evaluate_one_split(capsys, shared_dir, tmp_path, tiny_backbone_dir):
    import gzip

    from hpt_core.model import HPTModel

    source = shared_dir / "data" / "20newsgroups" / "20news-bydate.jsonl.gz"
    with gzip.open(source, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    picked = [r for r in records if r["split"] == "train"][::400] + [r for r in records if r["split"] == "test"][::400]
    data = tmp_path / "news.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    taxonomy = source.with_name("20ng.taxonomy")
    out_dir = tmp_path / "news-ckpt"
    argv = ["train", "--data", data, "--hierarchy", taxonomy, "--out", out_dir, "--backbone", tiny_backbone_dir]
    argv += ["--max-steps", 2, "--batch-size", 8, "--max-length", 64, "--strip-newsgroup-headers", "--weights", "mixed"]
    code, out, err = call(capsys, argv)
    assert code == 0, err
    n_test = sum(r["split"] == "test" for r in picked)
    assert json.loads(out)["training"]["test_documents"] == n_test  # the file's own test split is kept
    provenance = json.loads((out_dir / "train_config.json").read_text(encoding="utf-8"))
    assert provenance["strip_newsgroup_headers"] is True
    assert (
        provenance["command"].startswith("python -m hpt_core train --data ")
        and "--weights mixed" in provenance["command"]
    )
    assert json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["weights_dtype"] == "mixed"
    assert all(p.dtype == torch.float32 for p in HPTModel.from_pretrained(out_dir).parameters())
    saved = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))["test"]
    evaluate = ["evaluate", "--model", out_dir, "--data", data, "--split", "test", "--strip-newsgroup-headers"]
    code, out, err = call(capsys, evaluate)
    assert code == 0, err
    report = json.loads(out)
    assert report["n_documents"] == n_test
    assert report["micro_f1"] == pytest.approx(saved["micro_f1"], abs=1e-6)  # same texts, same model
    code, out, err = call(capsys, ["evaluate", "--model", out_dir, "--data", data, "--split", "dev"])
    assert_user_error(code, out, err, "no documents with split 'dev'")


def test_predict_text_and_file(capsys, trained, tmp_path):
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--text", "deep networks for image analysis"])
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    check_prediction(row)
    assert row["id"] == 1 and row["text_preview"] == "deep networks for image analysis"

    texts = ["protein folding in cells", "bridges and concrete", " ".join(["stress"] * 400)]
    file = tmp_path / "texts.txt"
    file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", file, "--rule", "top-down"])
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    for row in rows:
        check_prediction(row)
        assert row["consistent"] is True  # top-down never returns an orphan
    assert rows[2].get("truncated") is True and "truncated" not in rows[0]
    assert [row["id"] for row in rows] == [1, 2, 3]  # .txt: the line numbers
    assert rows[0]["text_preview"] == texts[0] and len(rows[2]["text_preview"]) == 100
    assert "predict" in err  # the progress bar, on stderr

    # a threshold nothing passes: no label, or with --best-path each text's best path, flagged
    high = ["predict", "--model", trained["dir"], "--file", file, "--threshold", "1e9"]
    code, out, err = call(capsys, high)
    assert code == 0, err
    assert all(json.loads(line)["paths"] == [] for line in out.splitlines())
    code, out, err = call(capsys, [*high, "--best-path", "--out", tmp_path / "best.jsonl"])
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "best.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all(r["below_threshold"] is True and len(r["paths"]) == 1 for r in rows)
    assert all(r["display_names"] == r["paths"] for r in rows)  # a model trained without label names


def _wos_csv(path: Path, n: int) -> list[dict]:
    """The first ``n`` real WOS abstracts as a CSV with ``id`` and ``text`` columns (labels ignored)."""
    with open(REPO_ROOT / "assets" / "wos-1k" / "wos_total_1k.json", encoding="utf-8") as f:
        docs = [json.loads(next(f)) for _ in range(n)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "labels"])
        writer.writerows([f"wos-{k}", d["doc_token"], " > ".join(d["doc_label"])] for k, d in enumerate(docs))
    return docs


def test_predict_file_to_csv_and_jsonl(capsys, trained, tmp_path):
    data = tmp_path / "abstracts.csv"
    docs = _wos_csv(data, 6)
    out_file = tmp_path / "preds.csv"
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", data, "--out", out_file])
    assert code == 0, err
    assert json.loads(out) == {"out": str(out_file), "format": "csv", "rows": 6}  # the format from the suffix
    assert "6/6" in err and f"Wrote 6 prediction(s) to {out_file}" in err
    with open(out_file, encoding="utf-8", newline="") as f:
        as_csv = list(csv.DictReader(f))
    assert list(as_csv[0]) == [
        "id",
        "text_preview",
        "paths",
        "probabilities",
        "truncated",
        "display_names",
        "below_threshold",
    ]
    assert [r["id"] for r in as_csv] == [f"wos-{k}" for k in range(6)]

    # an existing output is kept unless --overwrite; --format overrides the suffix
    argv = ["predict", "--model", trained["dir"], "--file", data, "--out", out_file, "--format", "jsonl"]
    code, out, err = call(capsys, argv)
    assert_user_error(code, out, err, str(out_file), "already exists", "--overwrite")
    code, out, err = call(capsys, [*argv, "--overwrite"])
    assert code == 0, err
    assert json.loads(out)["format"] == "jsonl"
    as_json = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    for c, j, doc in zip(as_csv, as_json, docs, strict=True):  # the same rows in both formats
        assert c["id"] == j["id"] and j["text_preview"] == c["text_preview"] and len(j["text_preview"]) <= 100
        assert " ".join(doc["doc_token"].split()).startswith(j["text_preview"].removesuffix("…"))
        assert c["paths"] == "; ".join(" > ".join(p) for p in j["paths"])
        assert len(j["probabilities"]) == len(j["paths"]) and all(0.5 < p < 1 for p in j["probabilities"])
        assert c["probabilities"] == "; ".join(f"{p:.4f}" for p in j["probabilities"])
        assert c["truncated"] == "true" and j["truncated"] is True  # abstracts are longer than 64 tokens
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", data, "--out", tmp_path / "p.txt"])
    assert_user_error(code, out, err, "p.txt", "cannot tell the output format", "--format")
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", data, "--format", "csv"])
    assert_user_error(code, out, err, "--format needs --out")


def test_predict_bad_file_writes_nothing(capsys, trained, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "text": "protein folding in cells"}\n{"id": "b", "text": ""}\n{"id": "c", "txt": "bridges"}\n',
        encoding="utf-8",
    )
    out_file = tmp_path / "preds.csv"
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", bad, "--out", out_file])
    assert_user_error(code, out, err, str(bad), "2 problems found")
    assert f"{bad}:2: text: the text is empty" in err and f"{bad}:3: text: missing" in err
    assert list(tmp_path.iterdir()) == [bad]  # no output, no temporary file
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", bad])
    assert_user_error(code, out, err, "2 problems found")  # stdout stays empty: no row before the error
    columns = tmp_path / "columns.csv"
    columns.write_text("title,body\nBridges,and concrete\n", encoding="utf-8")
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", columns, "--out", out_file])
    assert_user_error(code, out, err, f"{columns}:1: header: missing column 'text'", "found columns: 'title', 'body'")
    assert not out_file.exists()


def check_prediction(row: dict) -> None:
    assert set(row) >= {"paths", "labels"}
    for path in row["paths"]:
        assert isinstance(path, list) and all(isinstance(name, str) for name in path)
        assert 1 <= len(path) <= 2
    for label in row["labels"]:
        assert {"label", "depth", "score"} <= set(label)
        assert label["depth"] == len(label["path"]) - 1 and label["path"][-1] == label["label"]
        assert label["score"] > 0  # the paper's rule: predicted when s > 0
    ends = {tuple(p) for p in row["paths"]}
    assert ends <= {tuple(label["path"]) for label in row["labels"]}


@pytest.mark.slow  # UMAP compiles its numba kernels (~20 s)
@pytest.mark.filterwarnings("ignore:n_jobs value:UserWarning")  # umap: a seeded run is single-threaded
def test_explain_json(capsys, trained):
    code, out, err = call(capsys, ["explain", "--model", trained["dir"], "--top-k", "3", "--map"])
    assert code == 0, err
    result = json.loads(out)
    labels = result["labels"]
    assert len(labels) == 141
    saved = json.loads((trained["dir"] / "hierarchy.json").read_text(encoding="utf-8"))["labels"]
    assert [item["label"] for item in labels] == [label["name"] for label in saved]  # label-id order
    assert [item["depth"] for item in labels].count(0) == 7
    for item in labels:
        assert {"label", "path", "depth", "words", "umap"} <= set(item)
        assert len(item["words"]) == 3
        sims = [w["similarity"] for w in item["words"]]
        assert sims == sorted(sims, reverse=True)
        assert all(not w["word"].startswith(("##", "[")) for w in item["words"])
        assert len(item["umap"]) == 2


# ------------------------------------------------------------------------------------------------ user errors
def test_train_missing_data_file(capsys, tmp_path):
    code, out, err = call(capsys, ["train", "--data", tmp_path / "missing.json", "--out", tmp_path / "out"])
    line = assert_user_error(code, out, err, "missing.json", "does not exist")
    assert err.strip() == line  # nothing else was printed
    assert not (tmp_path / "out").exists()


def test_train_unknown_label_against_hierarchy(capsys, tmp_path, taxonomy):
    data = tmp_path / "unknown.jsonl"
    data.write_text(
        "".join(f'{{"doc_token": "text {k}", "doc_label": ["CS", "Machine learning"]}}\n' for k in range(9))
        + '{"doc_token": "cooking", "doc_label": ["CS", "Quantum cooking"]}\n',
        encoding="utf-8",
    )
    code, out, err = call(capsys, ["train", "--data", data, "--hierarchy", taxonomy, "--out", tmp_path / "out"])
    assert_user_error(code, out, err, f"{data}:10:", "'Quantum cooking'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--epochs", "0", "expected a positive whole number, got '0'"),
        ("--epochs", "two", "expected a positive whole number, got 'two'"),
        ("--lr", "-1", "expected a positive number, got '-1'"),
        ("--lr", "nan", "expected a positive number, got 'nan'"),
        ("--low-resource", "2", "expected a fraction in (0, 1]"),
        ("--batch-size", "0", "expected a positive whole number"),
        ("--variant", "gpt", "invalid choice: 'gpt'"),
    ],
)
def test_train_bad_flag_values_exit_2(capsys, tmp_path, flag, value, message):
    code, out, err = call(capsys, ["train", "--data", "d.json", "--out", tmp_path / "o", flag, value])
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert message in err


@pytest.mark.parametrize("flag", ["--seed", "--split-seed"])
def test_train_negative_seeds_are_user_errors(capsys, wos_slice, tmp_path, flag):
    code, out, err = call(capsys, ["train", "--data", wos_slice, "--out", tmp_path / "o", flag, "-1"])
    assert code == 2
    assert out == "" and "Traceback" not in err
    assert f"argument {flag}: expected a whole number from 0 to 2**32 - 1, got '-1'" in err
    assert not (tmp_path / "o").exists()


def test_train_refuses_non_empty_out(capsys, wos_slice, tmp_path):
    out_dir = tmp_path / "taken"
    out_dir.mkdir()
    keep = out_dir / "notes.txt"
    keep.write_text("precious", encoding="utf-8")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out_dir.iterdir()}
    code, out, err = call(capsys, ["train", "--data", wos_slice, "--out", out_dir, "--max-steps", "1"])
    assert_user_error(code, out, err, str(out_dir), "--overwrite")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out_dir.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no staging directory left behind


def test_train_log_file_that_is_a_directory_is_a_user_error(capsys, wos_slice, tmp_path, tiny_backbone_dir):
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "ckpt", "--backbone", tiny_backbone_dir]
    code, out, err = call(capsys, [*argv, "--max-steps", "1", "--log-file", tmp_path])
    assert_user_error(code, out, err, "--log-file", "is a directory")
    assert not (tmp_path / "ckpt").exists()


def test_train_overwrite_replaces_out(capsys, wos_slice, tmp_path, tiny_backbone_dir):
    out_dir = tmp_path / "taken"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("old", encoding="utf-8")
    argv = ["train", "--data", wos_slice, "--out", out_dir, "--backbone", tiny_backbone_dir]
    code, out, err = call(capsys, [*argv, "--max-steps", "1", "--max-length", "32", "--overwrite"])
    assert code == 0, err
    assert not (out_dir / "notes.txt").exists()
    assert all((out_dir / name).is_file() for name in CHECKPOINT_FILES)
    assert json.loads(out)["training"]["steps"] == 1


@pytest.mark.parametrize("native", [True, False])
def test_train_says_when_auto_precision_trains_in_bf16(
    capsys, monkeypatch, wos_slice, tmp_path, tiny_backbone_dir, native
):
    monkeypatch.setattr(device_module, "native_bf16", lambda device: native)  # the CPU's instructions, both ways
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "m", "--backbone", tiny_backbone_dir]
    code, out, err = call(capsys, [*argv, "--max-steps", "1", "--max-length", "32", "--device", "cpu"])
    assert code == 0, err
    assert ("Precision: bf16" in err) == native  # said only where auto does train in bf16
    assert json.loads(out)["training"]["precision"] == ("bf16" if native else "fp32")


def test_train_code_faithful_applies_both_presets(capsys, wos_slice, tmp_path, tiny_backbone_dir):
    """``--code-faithful`` sets every field of ``CODE_FAITHFUL`` and ``CODE_FAITHFUL_TRAINING``; the saved configs say
    each one. Flags generated for the other TrainConfig fields reach train_config.json too."""
    from hpt_core.model import CODE_FAITHFUL
    from hpt_core.training import CODE_FAITHFUL_TRAINING

    out_dir = tmp_path / "code"
    argv = ["train", "--data", wos_slice, "--out", out_dir, "--backbone", tiny_backbone_dir, "--code-faithful"]
    argv += [
        "--max-steps",
        1,
        "--max-length",
        32,
        "--weight-decay",
        0.01,
        "--eval-batch-size",
        8,
        "--precision",
        "fp32",
    ]
    code, out, err = call(capsys, argv)
    assert code == 0, err
    assert "Model: hpt (code-faithful) on" in err
    saved = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["hpt_config"]
    assert {k: saved[k] for k in CODE_FAITHFUL} == CODE_FAITHFUL and "code_faithful" not in saved
    provenance = json.loads((out_dir / "train_config.json").read_text(encoding="utf-8"))
    assert {k: provenance[k] for k in CODE_FAITHFUL_TRAINING} == CODE_FAITHFUL_TRAINING
    assert provenance["variant"] == "hpt (code-faithful)" and provenance["weight_decay"] == 0.01
    assert provenance["eval_batch_size"] == 8 and provenance["precision"] == "fp32"
    assert (provenance["epochs"], provenance["lr"], provenance["patience"], provenance["seed"]) == (20, 1e-4, 6, 3)
    assert (provenance["lr_new"], provenance["schedule"], provenance["warmup_ratio"]) == (3e-3, "linear", 0.1)


def test_train_max_length_beyond_backbone_positions(capsys, wos_slice, tmp_path, tiny_backbone_dir):
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "o", "--backbone", tiny_backbone_dir]
    code, out, err = call(capsys, [*argv, "--max-steps", "1", "--max-length", "100"])
    assert_user_error(code, out, err, "max_length", "64")


def test_unreachable_hub_backbone_offline(capsys, monkeypatch, wos_slice, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "o", "--backbone", "some-org/not-a-model"]
    code, out, err = call(capsys, [*argv, "--max-steps", "1"])
    line = assert_user_error(code, out, err, "'some-org/not-a-model'", "offline", "local directory")
    assert line.count(".") >= 1 and "\n" not in line
    assert not (tmp_path / "o").exists()


def test_float16_delta_of_a_hub_backbone_is_refused_before_training(capsys, monkeypatch, wos_slice, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "o", "--backbone", "some-org/a-hub-model"]
    code, out, err = call(capsys, [*argv, "--max-steps", "1", "--weights", "float16-delta"])
    assert_user_error(code, out, err, "float16-delta", "'some-org/a-hub-model'", "--weights float16")
    assert "step" not in err and not (tmp_path / "o").exists()


def test_missing_local_backbone_dir(capsys, wos_slice, tmp_path):
    missing = tmp_path / "no-such-model"
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "o", "--backbone", missing]
    code, out, err = call(capsys, [*argv, "--max-steps", "1"])
    assert_user_error(code, out, err, str(missing), "does not exist")


def test_backbone_dir_without_config(capsys, wos_slice, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    argv = ["train", "--data", wos_slice, "--out", tmp_path / "o", "--backbone", folder]
    code, out, err = call(capsys, [*argv, "--max-steps", "1"])
    assert_user_error(code, out, err, "config.json")


@pytest.mark.parametrize("command", ["evaluate", "predict", "explain"])
def test_model_dir_that_is_not_a_checkpoint(capsys, tmp_path, wos_slice, command):
    folder = tmp_path / "random-dir"
    folder.mkdir()
    (folder / "something.txt").write_text("hello", encoding="utf-8")
    extra = {"evaluate": ["--data", wos_slice], "predict": ["--text", "hello"], "explain": []}[command]
    code, out, err = call(capsys, [command, "--model", folder, *extra])
    assert_user_error(code, out, err, str(folder), "not a complete HPT checkpoint")
    code, out, err = call(capsys, [command, "--model", tmp_path / "absent", *extra])
    assert_user_error(code, out, err, "does not exist")


def test_evaluate_missing_data_and_other_hierarchy(capsys, trained, tmp_path):
    code, out, err = call(capsys, ["evaluate", "--model", trained["dir"], "--data", tmp_path / "gone.json"])
    assert_user_error(code, out, err, "gone.json", "does not exist")
    other = tmp_path / "other.taxonomy"
    other.write_text("Root\tA\tB\nA\tA1\nB\tB1\n", encoding="utf-8")
    code, out, err = call(capsys, ["evaluate", "--model", trained["dir"], "--data", "x.json", "--hierarchy", other])
    assert_user_error(code, out, err, str(other), "differs from the model's label hierarchy")


def test_predict_empty_text_and_missing_source(capsys, trained, tmp_path):
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--text", "   "])
    assert_user_error(code, out, err, "--text is empty")
    code, out, err = call(capsys, ["predict", "--model", trained["dir"], "--file", tmp_path / "none.txt"])
    assert_user_error(code, out, err, "none.txt", "does not exist")
    code, out, err = call(capsys, ["predict", "--model", trained["dir"]])
    assert code == 2 and out == "" and "one of the arguments --text --file is required" in err


def test_no_command_is_a_usage_error(capsys):
    code, out, err = call(capsys, [])
    assert code == 2 and out == "" and "usage:" in err and "Traceback" not in err
