"""The book's sources: configuration, table of contents, parameters cells, executed outputs, records.

Fast, static checks on the committed files; executing the notebooks is nbval's job
(``pytest --nbval-lax book/``) and building and viewing them is ``test_book_browser.py``'s.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTERS = [p for p in NOTEBOOKS if p.stem[:2].isdigit()]
TRAINING = [p for p in CHAPTERS if p.stem[:2] in {"03", "04", "05", "06", "07"}]
MAX_CELL_LINES = 12


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_config_never_executes_and_builds_only_the_toc():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert {".venv", "_build", "tests", "lib", "runs"} <= set(config["exclude_patterns"])
    assert config["launch_buttons"]["thebe"] is False and not config["launch_buttons"]["binderhub_url"]
    assert config["sphinx"]["config"]["nb_render_markdown_format"] == "myst"


def test_toc_lists_every_page_and_every_page_exists():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    for f in files:
        assert any((REPO / f).with_suffix(s).is_file() for s in (".md", ".ipynb")), f
    pages = {f"book/{p.stem}" for p in BOOK.iterdir() if p.suffix in {".md", ".ipynb"}}
    assert pages == set(files)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_a_comment_on_every_parameter(path):
    nb = read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = papermill.inspect_notebook(str(path))
    body = ast.parse(tagged[0].source).body
    assigned = [node.target.id for node in body if isinstance(node, ast.AnnAssign)]
    assert len(assigned) == len(body), 'every parameter is annotated: `name: type = value  # comment`'
    assert assigned and list(params) == assigned, \
        "papermill cannot parse every parameter line (no '=' inside the '# comment')"
    for name, info in params.items():
        assert info["help"].strip(), f"parameter {name!r} needs a '# comment' (shown by papermill --help-notebook)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_executed_without_errors(path):
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "execute the notebook before committing it"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "cells were executed out of order"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_thin(path):
    for cell in read(path).cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        assert len(lines) <= MAX_CELL_LINES, f"cell too long ({len(lines)} lines): move logic into the library"
        wide = [line for line in lines if len(line) > 100]
        assert not wide, f"lines wider than the page: {wide}"
        assert not re.search(r"\.backward\(|optimizer\.step|for epoch in", cell.source), "training logic in a cell"


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_training_chapters_show_where_they_ran(path):
    outputs = [o for c in read(path).cells if c.cell_type == "code" for o in c.get("outputs", [])]
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any(m.startswith("```{admonition}") or m.startswith("```{note}") for m in markdown), \
        "the chapter's banner (chapter.banner()) is missing from its outputs"
    record = json.loads((BOOK / "records" / f"{path.stem}.json").read_text())
    if record["configuration"] == "smoke":
        assert any("Smoke configuration — not a result" in m for m in markdown)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_record(path):
    record = json.loads((BOOK / "records" / f"{path.stem}.json").read_text())
    assert record["chapter"] == path.stem
    assert record["configuration"] in {"smoke", "full"}
    assert {"device", "python", "torch", "timm", "git_commit"} <= set(record["environment"])


def test_results_prose_types_no_number():
    nb = read(BOOK / "08_results.ipynb")
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    prose = re.sub(r"\{glue:[a-z]*\}`[^`]*`", "", prose)
    assert not re.findall(r"\d+\.\d+|\d+\s*%", prose), "numbers in the results prose must be glued"
    assert "results.paragraph(" in "\n".join(c.source for c in nb.cells)  # written only with its numbers


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_machinery_on_the_page(path):
    """Bookkeeping cells are hidden (Jupyter Book's tags), figures have numbered captions and alt text, and no
    page prints the library's source."""
    for cell in read(path).cells:
        tags, source = cell.metadata.get("tags", []), cell.source
        if cell.cell_type != "code":
            continue
        assert "getsource" not in source, "link to the library's source instead of printing it"
        if "chapter.start(" in source or "results." in source and "display(" in source:
            assert {"remove-input", "remove-cell"} & set(tags), f"bookkeeping cell shown: {source[:60]!r}"
        if ".finish(" in source:
            assert "remove-cell" in tags, f"the record's cell is shown: {source[:60]!r}"
        if re.search(r"\b(figures|diagrams|performance)\.plot_", source):
            figure = cell.metadata.get("mystnb", {})
            assert figure.get("figure", {}).get("caption") and figure["figure"].get("name"), "no numbered caption"
            assert len(figure.get("image", {}).get("alt", "")) > 30, "no real alt text"


def test_the_introduction_is_for_readers():
    text = (BOOK / "01_introduction.md").read_text()
    assert "pytest" not in text and "CONVNEXT_REPORT_" not in text, "testing and environment: README"
    assert "{glue} glance" in text and "{glue} glance" in (BOOK / "index.md").read_text()
