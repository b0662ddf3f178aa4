"""docs/index.md lists every page of docs/, each link points at a file, and the README links the index."""
import re

from tests.conftest import ROOT

DOCS = ROOT / "docs"


def index_links() -> list[str]:
    return re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (DOCS / "index.md").read_text())


def test_the_index_lists_every_page_and_only_pages_that_exist():
    links = index_links()
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages - set(links) == set(), "pages missing from docs/index.md"
    assert [link for link in links if not (DOCS / link).is_file()] == []


def test_the_readme_links_the_index():
    assert "(docs/index.md)" in (ROOT / "README.md").read_text()


def test_make_help_lists_every_phony_target():
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    listed = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True).stdout
    names = {name for line in listed.splitlines() for name in line.split("  ")[1].split()}
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    phony = {name for line in makefile.splitlines() if line.startswith(".PHONY:") for name in line.split()[1:]}
    assert phony - names == set()


def test_what_a_run_writes_names_every_declared_variant():
    from noise_exp.methods.registry import known_variants

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## What a run writes"):].split("\n## ")[0]
    assert [v for v in known_variants() if f"`{v}`" not in section] == []
