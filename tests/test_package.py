"""The installable package: ``pip install .`` in a fresh virtual environment gives the ``hpt-studio`` console script
and importable ``hpt_core`` / ``hpt_studio`` from any folder, with the app's assets inside the package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _pins(path: Path) -> list[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-r")]


def test_dependencies_are_the_requirements_pins():
    assert PYPROJECT["project"]["dependencies"] == _pins(REPO / "requirements.txt")
    extras = PYPROJECT["project"]["optional-dependencies"]
    runtime = set(PYPROJECT["project"]["dependencies"])
    assert (
        set(extras["dev"] + extras["bench"]) | runtime
        == set(_pins(REPO / "requirements-dev.txt")) | set(_pins(REPO / "requirements-bench.txt")) | runtime
    )
    assert set(_pins(REPO / "requirements-bench.txt")) <= set(extras["bench"]) | runtime
    assert all(
        re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", pin) for pin in PYPROJECT["project"]["dependencies"]
    )


def test_packaged_assets_are_the_ones_the_app_reads():
    from app.config import ASSETS, AppConfig

    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["hpt_studio.assets"]
    packaged = {p for pattern in patterns for p in ASSETS.glob(pattern) if p.is_file()}
    config = AppConfig()
    needed = [*config.eval_files.values(), *config.examples.values(), config.demo_dataset, config.demo_hierarchy]
    assert needed and all(p in packaged for p in needed), sorted(set(needed) - packaged)


def _run(argv: list, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pip_install_gives_a_console_script_that_works_from_any_folder(tmp_path, save_tiny_backbone, clone_files):
    # The source as a fresh clone has it (no weights), built into a fresh environment. That environment sees this
    # machine's packages (torch & co. are not downloaded again) but not the checkout, and the build uses the installed
    # setuptools, so the test runs offline.
    source = clone_files("source")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    python, script = venv / "bin" / "python", venv / "bin" / "hpt-studio"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HPT_STUDIO_CHECKPOINTS", "HPT_STUDIO_HOME"}}
    env |= {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", source]
    done = _run(install, elsewhere, env)
    assert done.returncode == 0, done.stderr[-3000:]

    probe = (
        "import json, hpt_core, hpt_studio; from hpt_studio.config import AppConfig, INSTALLED; c = AppConfig(); "
        "print(json.dumps({'core': hpt_core.__file__, 'ui': hpt_studio.__file__, 'installed': INSTALLED, "
        "'demo': c.demo_dataset.is_file(), 'examples': all(p.is_file() for p in c.examples.values()), "
        "'home': str(c.user_dir)}))"
    )
    done = _run([python, "-c", probe], elsewhere, env)
    assert done.returncode == 0, done.stderr[-3000:]
    where = json.loads(done.stdout)
    site = str(venv)
    assert where["core"].startswith(site) and where["ui"].startswith(site)  # not the checkout's copies
    assert where["installed"] and where["demo"] and where["examples"]
    assert not where["home"].startswith(site)  # fine-tuned models never go into site-packages

    done = _run([script, "--help"], elsewhere, env)
    assert done.returncode == 0 and "usage: hpt-studio" in done.stdout
    for command in ("validate", "train", "pretrain", "evaluate", "predict", "explain", "app"):
        assert command in done.stdout

    demo = Path(where["ui"]).parent / "assets" / "wos-1k"
    done = _run([script, "validate", demo / "wos_total_1k.json", "--hierarchy", demo / "wos.taxnomy"], elsewhere, env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_documents"] == 1000

    # train and predict with the installed package on the packaged demo data (a tiny backbone, 2 steps)
    backbone = save_tiny_backbone()
    out = elsewhere / "model"
    train = [script, "train", "--data", demo / "wos_total_1k.json", "--hierarchy", demo / "wos.taxnomy"]
    train += ["--out", out, "--backbone", backbone, "--max-steps", 2, "--batch-size", 8, "--max-length", 32]
    done = _run(train, elsewhere, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.json").is_file() and "test" in json.loads(done.stdout)
    done = _run([script, "predict", "--model", out, "--text", "Gene expression in cancer cells."], elsewhere, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[0])["paths"] is not None

    # a bad folder for the app: one sentence, exit status 2, no traceback
    done = _run([script, "app", "--models", elsewhere / "none"], elsewhere, env)
    assert done.returncode == 2 and "no such folder" in done.stderr and "Traceback" not in done.stderr
