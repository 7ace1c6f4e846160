"""The README and docs/ say what is true: the commands CI runs, the flags a command requires, the files
they point to, and the test marks they describe."""

import ast
import re
import shlex
from pathlib import Path

import pytest

from grover_jax.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (REPO / "docs").glob("*.md")}


def commands_of(text: str, marker: str) -> list[str]:
    """Lines of fenced shell blocks (continuations joined) that end with the comment `marker`."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines += [line for line in block.replace("\\\n", " ").splitlines() if line.rstrip().endswith(marker)]
    return [line.rsplit("#", 1)[0].strip() for line in lines]


def test_the_first_screen_holds_the_two_commands_and_ci_runs_the_readmes_test_command():
    first_screen = README[: README.index("## What comes out")]
    assert commands_of(first_screen, "# the main job on the bundled real genome (hg19 chr20, 5 Mb)") == [
        "pip install -e . && grover run"]
    (test_command,) = commands_of(first_screen, "# the tests")
    assert test_command.endswith('pip install -e ".[test]" && python -m pytest')
    # PyTorch's CPU build first where there is no NVIDIA GPU, so [test] does not pull the CUDA one.
    assert test_command.startswith("(nvidia-smi -L >/dev/null 2>&1 || pip install torch --index-url "
                                   "https://download.pytorch.org/whl/cpu) && ")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_readme_and_docs_point_only_to_files_in_the_project():
    for name, text in {"README.md": README, **DOCS}.items():
        assert "../shared" not in text, name
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            base = REPO if name == "README.md" else REPO / "docs"
            assert (base / target).exists(), f"{name} links to {target}"


def documented_commands() -> list[str]:
    """Every `grover ...` command line of the fenced shell blocks and of the command table's first
    column, in README and docs; optional parts `[...]` dropped."""
    found = []
    for text in (README, *DOCS.values()):
        lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
                 for line in block.replace("\\\n", " ").splitlines()]
        lines += [cell for row in re.findall(r"^\| (`grover [^|]+) \|", text, re.MULTILINE)
                  for cell in re.findall(r"`(grover [^`]+)`", row)]
        for line in lines:
            for part in re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split("&&"):
                if part.strip().startswith("grover ") and "..." not in part and "{" not in part:
                    found.append(" ".join(part.split()))
    return found


@pytest.mark.parametrize("line", sorted(set(documented_commands())))
def test_every_documented_command_parses_with_its_required_flags(line):
    try:
        build_parser().parse_args(shlex.split(line)[1:])
    except SystemExit as exit_:
        pytest.fail(f"`{line}` does not parse (exit {exit_.code})")


def test_the_genome_scale_recipe_gives_bpe_and_store_the_same_splits():
    recipe = DOCS["DATA.md"].split("## A whole assembly on one machine", 1)[1]
    block = re.search(r"```bash\n(.*?)```", recipe, re.DOTALL)[1].replace("\\\n", " ")
    splits = {line.split()[1]: re.search(r'--splits "([^"]+)"', line) for line in block.splitlines()
              if line.startswith(("grover bpe", "grover store"))}
    assert set(splits) == {"bpe", "store"} and all(splits.values())
    assert len({match[1] for match in splits.values()}) == 1 and "valid=" in splits["store"][1]


def test_every_test_that_reads_the_shared_data_folder_carries_the_shared_data_mark():
    unmarked = []
    for path in (REPO / "tests").glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test_"):
                continue
            calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
            marks = {ast.unparse(d) for d in node.decorator_list}
            if "shared_file" in calls and "pytest.mark.shared_data" not in marks:
                unmarked.append(f"{path.name}::{node.name}")
    assert unmarked == []
    assert "shared_data" in (REPO / "pyproject.toml").read_text()
