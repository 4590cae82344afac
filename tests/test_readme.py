"""The README stays true: its paths exist in a clone, nothing points outside the repository, the two fresh-machine
commands are the ones CI runs, every command-line flag it shows exists, its concrete commands and its Python snippet
run from a fresh copy of the repository, and every API name it lists is served by the app."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "assets" / "README.md"]
USER_DOCS += sorted((REPO / "checkpoints").glob("*/README.md"))
QUICK_STEPS = 2  # training commands and snippets run for this many steps: the doc test checks they work, not F1


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The command lines of a bash block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = (line.split("  #")[0].strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_concrete(command: str) -> bool:
    """No placeholder (DATA, DIR, F, N...) and no optional ``[...]`` part: the line can run as written."""
    return "[" not in command and not re.search(r"(?<![-\w./])[A-Z][A-Z_]*(?![\w.])", command.replace("HF_HUB", ""))


def test_paths_in_the_readme_exist_in_the_repository():
    linked = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    quoted = re.findall(r"`((?:assets|docs|checkpoints|benchmarks|hpt_core|app|tests|\.ci)/[^`\s]*)`", README)
    paths = {p for p in linked + quoted if not p.startswith(("http", "mailto"))}
    assert paths, "no paths found: the patterns are wrong"
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists() and "*" not in p)
    assert not missing, f"README names paths a clone does not have: {missing}"


def test_user_docs_never_point_outside_the_repository():
    for doc in USER_DOCS:
        text = doc.read_text(encoding="utf-8")
        # the developers' notes and data files; naming the default data folder (docs/data.md) is fine
        for pattern in (r"\.\./shared", r"shared/(docs|data/\w)", r"/work/", r"/tmp/"):
            found = re.search(pattern, text)
            assert found is None, f"{doc.relative_to(REPO)} points outside the repository: {found.group(0)!r}"


def test_the_fresh_machine_commands_are_the_ones_ci_runs():
    bash = blocks("bash")
    assert bash[0].strip() == "pip install -r requirements.txt && python app.py"
    assert bash[1].strip() == "pip install -r requirements-dev.txt && HF_HUB_OFFLINE=1 python -m pytest -q tests"
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -r requirements-dev.txt" in ci and "pytest -q -p no:cacheprovider tests" in ci
    assert (REPO / "app.py").is_file()


def test_every_cli_flag_the_readme_shows_exists():
    from hpt_core.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    shown = [c for b in blocks("bash") for c in commands(b)]
    checked = 0
    for line in shown:
        for command in re.split(r"&&|;", line):
            words = command.split()
            for start, word in enumerate(words):
                if word in ("hpt-studio",) or words[start : start + 3] == ["python", "-m", "hpt_core"]:
                    name = words[start + (1 if word == "hpt-studio" else 3)]
                    assert name in subcommands, f"README shows an unknown command: {command!r}"
                    options = set(subcommands[name]._option_string_actions)
                    flags = {w.split("=")[0] for w in re.findall(r"--[\w-]+", command)}
                    assert flags <= options, f"{command!r}: {sorted(flags - options)} are not flags of {name}"
                    checked += 1
    assert checked >= 8


@pytest.fixture
def fresh_copy(clone_files) -> Path:
    """The repository as a clone has it, outside the checkout, one per test (the README's commands write into it);
    the weights are linked rather than copied."""
    copy = clone_files("hpt-studio")
    (copy / "checkpoints").symlink_to(REPO / "checkpoints", target_is_directory=True)
    return copy


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "HPT_STUDIO_CHECKPOINTS"}}
    return env | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "2"}


@pytest.mark.slow
def test_the_readme_commands_run_from_a_fresh_clone(fresh_copy):
    runnable = [
        c
        for b in blocks("bash")[2:]  # the two install commands are checked above
        for c in commands(b)
        if is_concrete(c) and re.match(r"(python -m hpt_core|hpt-studio) (validate|train|evaluate|predict|explain)", c)
    ]
    assert runnable, "no concrete command found"
    for command in runnable:
        argv = shlex.split(command)
        argv = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, "-m", "hpt_core", *argv[1:]]
        if argv[3] == "train":
            argv += ["--max-steps", str(QUICK_STEPS)]
        done = subprocess.run(argv, cwd=fresh_copy, env=_env(), capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"


@pytest.mark.slow
def test_the_readme_python_snippets_run_from_a_fresh_clone(fresh_copy):
    snippets = [b for b in blocks("python") if "gradio_client" not in b]  # the client one needs a server: below
    assert snippets
    for snippet in snippets:
        quick = snippet.replace("TrainConfig(", f"TrainConfig(max_steps={QUICK_STEPS}, ")
        done = subprocess.run(
            [sys.executable, "-c", quick], cwd=fresh_copy, env=_env(), capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, f"{snippet}\n{done.stderr[-2000:]}"


@pytest.mark.slow
def test_the_api_names_the_readme_lists_are_served(app_server):
    from gradio_client import Client

    _, url = app_server
    served = set(Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"])
    listed = set(re.findall(r"api_name=\"(/\w+)\"", README)) | set(re.findall(r"`(/\w+)`", README))
    listed = {name for name in listed if not name.startswith(("/tmp", "/usr", "/work"))}
    assert listed and listed <= served, sorted(listed - served)
