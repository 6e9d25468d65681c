"""The documentation runs: every ```sh and ```python block of README.md and docs/*.md.

Each block is one test (id ``file:line`` of its opening fence). It runs as a reader of a fresh
clone would run it after the README's set-up: in a new temporary directory that holds links
to the repository's files (tracked or not ignored, so no image or Fdump.bin left in the
checkout is read or overwritten) and to the environment running the tests as ``.venv``,
with that environment's ``bin`` first on PATH. Shell blocks run under ``bash -e``, Python
blocks with the tests' interpreter. Files a block writes stay in the temporary directory.

A block that cannot run here is marked on the line before its fence, where doc authors see it:

    <!-- doctest: skip (why) -->     not run, reported as skipped with the reason
    <!-- doctest: slow (why) -->     run only with ``-m slow``
    <!-- doctest: cwd DIR -->        run in DIR of the clone (created), for a block that
                                     continues after an earlier one's ``cd DIR``

An unmarked block must run and succeed; a marker that is malformed, unknown or not followed by
a fence fails test_markers_are_well_formed.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

SHELL_LANGUAGES = {"sh", "bash", "shell"}
PYTHON_LANGUAGES = {"python", "py"}
# languages that look like commands but say nothing about how to run them: ask for sh/python
AMBIGUOUS_LANGUAGES = {"console", "shell-session", "pycon", "python3", "zsh"}

FENCE = re.compile(r"^```\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*doctest:(.*?)-->\s*$")
LOOKS_LIKE_A_MARKER = re.compile(r"^\s*<!--.*doctest", re.IGNORECASE)  # prose may quote one
SKIP_OR_SLOW = re.compile(r"^(skip|slow)\s*\((.+)\)$")
CWD = re.compile(r"^cwd\s+([\w./-]+)$")

# a default-run block should take seconds; the first numba render in a new environment also
# compiles the CPU loop (up to a minute on a slow machine), hence the margin
DEFAULT_TIMEOUT_S = 600
SLOW_TIMEOUT_S = 3600


@attrs.frozen
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    skip_reason: str | None = None
    slow_reason: str | None = None
    cwd: str | None = None

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(REPO).as_posix()}:{self.line}"


def parse_marker(body: str) -> dict | str:
    """The Block fields a marker sets, or a message saying what is wrong with it."""
    body = body.strip()
    if m := SKIP_OR_SLOW.match(body):
        return {f"{m.group(1)}_reason": m.group(2).strip()}
    if m := CWD.match(body):
        if Path(m.group(1)).is_absolute() or ".." in Path(m.group(1)).parts:
            return f"cwd must be a directory inside the clone, got {m.group(1)!r}"
        return {"cwd": m.group(1)}
    return (f"unknown doctest marker {body!r} "
            "(expected 'skip (reason)', 'slow (reason)' or 'cwd DIR')")


def read_blocks(document: Path) -> tuple[list[Block], list[str]]:
    """Every fenced block of a document, with its marker, and the problems found on the way."""
    blocks, problems = [], []
    lines = document.read_text(encoding="utf-8").splitlines()

    def where(number: int) -> str:
        return f"{document.relative_to(REPO).as_posix()}:{number}"

    pending, pending_line = None, 0  # the marker waiting for its fence
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if m := MARKER.match(line.strip()):
            if pending is not None:
                problems.append(f"{where(pending_line)}: doctest marker not followed by a fence")
            fields = parse_marker(m.group(1))
            if isinstance(fields, str):
                problems.append(f"{where(number)}: {fields}")
                pending = None
            else:
                pending, pending_line = fields, number
            continue
        if LOOKS_LIKE_A_MARKER.search(line):
            # a misspelt marker would otherwise leave its block unmarked without a word
            problems.append(f"{where(number)}: malformed doctest marker {line.strip()!r} "
                            "(expected '<!-- doctest: ... -->' on a line of its own)")
            continue
        fence = FENCE.match(line.lstrip())
        if not fence:
            if pending is not None and line.strip():
                problems.append(f"{where(pending_line)}: doctest marker not followed by a fence")
                pending = None
            continue
        start, language = number, fence.group(1).lower()
        body = []
        while number < len(lines) and not lines[number].lstrip().startswith("```"):
            body.append(lines[number])
            number += 1
        if number == len(lines):
            problems.append(f"{where(start)}: fence never closed")
        number += 1  # the closing fence
        fields, pending = pending or {}, None
        if language in AMBIGUOUS_LANGUAGES:
            problems.append(f"{where(start)}: ```{language} block: "
                            "label commands sh and code python")
        if language in SHELL_LANGUAGES | PYTHON_LANGUAGES:
            blocks.append(Block(document, start, language, "\n".join(body) + "\n", **fields))
        elif fields:
            problems.append(f"{where(pending_line)}: doctest marker on a ```{language} block, "
                            "which is never run")
    if pending is not None:
        problems.append(f"{where(pending_line)}: doctest marker not followed by a fence")
    return blocks, problems


def all_blocks() -> tuple[list[Block], list[str]]:
    blocks, problems = [], []
    for document in DOCUMENTS:
        found, trouble = read_blocks(document)
        blocks += found
        problems += trouble
    return blocks, problems


BLOCKS, MARKER_PROBLEMS = all_blocks()


def block_params():
    for block in BLOCKS:
        marks = []
        if block.skip_reason:
            marks.append(pytest.mark.skip(reason=f"{block.id}: {block.skip_reason}"))
        if block.slow_reason:
            marks.append(pytest.mark.slow)
        yield pytest.param(block, id=block.id, marks=marks)


@functools.cache
def repository_entries() -> tuple[str, ...]:
    """Top-level names a fresh clone has: tracked files and files git would not ignore."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        # no git: the directories are what the examples read; top-level files may be outputs
        return tuple(p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.name not in {"build", "dist", "scratch"})
    names = {path.split("/", 1)[0] for path in listed.split("\0") if path}
    return tuple(sorted(name for name in names if (REPO / name).exists()))


def fresh_clone(root: Path) -> Path:
    """A directory that stands in for a clone after scripts/bootstrap (links, not copies)."""
    clone = root / "clone"
    clone.mkdir()
    for name in repository_entries():
        (clone / name).symlink_to(REPO / name)
    # the environment running the tests stands in for the .venv that scripts/bootstrap makes
    if sys.prefix != sys.base_prefix:
        (clone / ".venv").symlink_to(Path(sys.prefix))
    return clone


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.mark.parametrize("block", list(block_params()))
def test_block_runs(block: Block, tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path)
    cwd = clone / block.cwd if block.cwd else clone
    cwd.mkdir(parents=True, exist_ok=True)
    if block.language in SHELL_LANGUAGES:
        script = tmp_path / "block.sh"
        script.write_text(block.text)
        command = ["bash", "-e", str(script)]
    else:
        script = tmp_path / "block.py"
        script.write_text(block.text)
        command = [sys.executable, str(script)]
    timeout = SLOW_TIMEOUT_S if block.slow_reason else DEFAULT_TIMEOUT_S
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, (
        f"{block.id}: the {block.language} block exited {done.returncode} "
        f"(ran {shlex.join(command)} in {cwd})\n--- block ---\n{block.text}"
        f"--- stdout (end) ---\n{done.stdout[-3000:]}\n--- stderr (end) ---\n{done.stderr[-3000:]}"
    )


def test_markers_are_well_formed() -> None:
    assert not MARKER_PROBLEMS, "\n".join(MARKER_PROBLEMS)


def test_every_document_is_read() -> None:
    # a renamed docs folder or README must not make the block tests vanish silently
    assert (REPO / "README.md") in DOCUMENTS and len(DOCUMENTS) > 1
    assert any(block.document.name == "README.md" for block in BLOCKS)


def test_refinement_script_is_the_documented_example() -> None:
    """docs/refinement-example.sh runs the commands docs/refinement.md shows."""
    example = [b for b in BLOCKS if b.document.name == "refinement.md" and b.language == "sh" and "--observed" in b.text]
    assert len(example) == 1
    script = (REPO / "docs" / "refinement-example.sh").read_text().splitlines()
    assert [line for line in script if line.strip() != "set -e"] == example[0].text.splitlines()


def test_example_inputs_are_what_their_script_makes(tmp_path: Path) -> None:
    """examples/make_inputs.py, run again, writes the shipped P1.hkl, A.mat and model.pdb byte for byte."""
    script = REPO / "examples" / "make_inputs.py"
    spec = importlib.util.spec_from_file_location("make_inputs", script)
    make_inputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_inputs)
    make_inputs.main(tmp_path)
    for name in ("P1.hkl", "A.mat", "model.pdb"):
        assert (tmp_path / name).read_bytes() == (REPO / "examples" / name).read_bytes(), name
