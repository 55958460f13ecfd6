"""The documents stay true: every Python block in README.md and docs/ runs, and every repository
path and dotted `supernet.` / `strategies.` name they mention exists.

Directives, HTML comments on the lines just before a ```python block:
  <!-- docs-test: skip: REASON -->          the block cannot run here (the reason is required)
  <!-- docs-test: replace: OLD => NEW -->   run the block with OLD replaced by NEW (e.g. smaller
                                           sizes); OLD must occur in the block
The blocks of one document run in order, in one process, so a block may use an earlier one's names.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md")])
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(skip|replace):\s*(.*?)\s*-->")
PATH = re.compile(r"(?<![\w./-])((?:\.\./)*(?:supernet|strategies|experiments|tests|docs|\.ci)/[\w./*-]*|"
                  r"launch\.py|requirements\.txt|pyproject\.toml|CHANGELOG\.md)")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOTTED = re.compile(r"(?<![\w.])((?:supernet|strategies)(?:\.[A-Za-z_]\w*)+)")


@dataclasses.dataclass
class Block:
    line: int            # 1-based line of the opening fence
    code: str
    skip: str | None     # the reason, when the block is skipped
    replacements: list   # (old, new) pairs


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a markdown text with the directives just above each."""
    lines, blocks, i = text.split("\n"), [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            skip, replacements, j = None, [], i - 1
            while j >= 0 and DIRECTIVE.search(lines[j]):
                kind, value = DIRECTIVE.search(lines[j]).groups()
                if kind == "skip":
                    skip = value
                else:
                    old, _, new = value.partition(" => ")
                    replacements.append((old, new))
                j -= 1
            end = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == "```")
            blocks.append(Block(i + 1, "\n".join(lines[i + 1:end]), skip, replacements))
            i = end
        i += 1
    return blocks


def runnable(document: str, blocks: list[Block]) -> str:
    """The blocks to run, concatenated, with their replacements applied; a replacement whose OLD
    text is missing is an error naming the document and the block's line."""
    parts = []
    for block in blocks:
        if block.skip is not None:
            assert block.skip, f"{document}:{block.line}: a skipped block must say why"
            continue
        code = block.code
        for old, new in block.replacements:
            assert old in code, f"{document}:{block.line}: replace directive's {old!r} is not in the block"
            code = code.replace(old, new)
        parts.append(f"# {document}:{block.line}\n{code}")
    return "\n\n".join(parts)


def missing_paths(text: str, document_dir: pathlib.Path) -> list[str]:
    """Repository paths mentioned in `text` (or linked from it) that do not exist, each as
    'line N: PATH', once per line."""
    def exists(path: str, base: pathlib.Path) -> bool:
        target = (base / path).resolve()
        return bool(glob.glob(str(target))) if "*" in path else target.exists()

    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        missing = []
        for match in PATH.finditer(line):
            path = match.group(1).rstrip(".,;:")
            if any(part.isupper() for part in re.split(r"[/.]", path) if len(part) > 1):
                continue  # a placeholder such as experiments/NAME.py
            if not exists(path, document_dir if path.startswith("../") else REPO):
                missing.append(path)
        for match in LINK.finditer(line):
            target = match.group(1)
            if "://" not in target and not target.startswith("mailto:") and not exists(target, document_dir):
                missing.append(target)
        problems += [f"line {number}: {path}" for path in dict.fromkeys(missing)]
    return problems


def missing_names(text: str) -> list[str]:
    """Dotted `supernet.` / `strategies.` names in backticks that do not resolve, each as
    'line N: NAME' (spans about config keys, which share the `supernet.` prefix, are left out)."""
    problems = []
    for number, line in enumerate(text.split("\n"), start=1):
        for span in re.findall(r"`([^`]+)`", line):
            if "config" in span:
                continue  # a config key or a message naming one, e.g. `--config.supernet.steps=10`
            problems += [f"line {number}: {name}" for name in DOTTED.findall(span) if not resolves(name)]
    return problems


def resolves(name: str) -> bool:
    """Whether `a.b.c` is a module, or an attribute chain on the longest importable module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def relative(path: pathlib.Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("document", DOCUMENTS, ids=relative)
def test_every_mentioned_path_and_name_exists(document):
    text = document.read_text()
    paths, names = missing_paths(text, document.parent), missing_names(text)
    assert not paths, f"{relative(document)} names paths that do not exist: {'; '.join(paths)}"
    assert not names, f"{relative(document)} names what supernet/strategies lack: {'; '.join(names)}"


@pytest.mark.parametrize("document", [d for d in DOCUMENTS if "```python" in d.read_text()], ids=relative)
def test_python_blocks_run(document, tmp_path):
    code = runnable(relative(document), python_blocks(document.read_text()))
    if not code:
        pytest.skip(f"every block of {relative(document)} is marked skip, each with its reason")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900, env=env)
    assert run.returncode == 0, f"{relative(document)}: a block failed:\n{run.stderr[-3000:]}"


def test_the_checkers_catch_what_does_not_exist():
    """Stale names of the kind a move leaves behind: the chain's operations and the sparse cell live
    under supernet/spaces/, and a renamed guide."""
    fake = ("Use `supernet.spaces.chain.OPERATIONS` and `strategies.get`, see supernet/spaces/sparse_cell.py.\n"
            "Stale: `supernet.chain.OPERATIONS`, `strategies.no_such_module.run`,\n"
            "supernet/sparse_cell.py and [a guide](docs/no_such_page.md).\n")
    assert missing_names(fake) == ["line 2: supernet.chain.OPERATIONS", "line 2: strategies.no_such_module.run"]
    assert missing_paths(fake, REPO) == ["line 3: supernet/sparse_cell.py", "line 3: docs/no_such_page.md"]


def test_directives_are_applied_and_checked():
    text = ("<!-- docs-test: replace: steps=1000 => steps=5 -->\n```python\nx = dict(steps=1000)\n```\n"
            "<!-- docs-test: skip: needs a GPU -->\n```python\nimport cuda_only\n```\n")
    blocks = python_blocks(text)
    assert [b.skip for b in blocks] == [None, "needs a GPU"]
    assert runnable("fake.md", blocks).endswith("x = dict(steps=5)")
    with pytest.raises(AssertionError, match="not in the block"):
        runnable("fake.md", [Block(1, "x = 1", None, [("y", "z")])])
