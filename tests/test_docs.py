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


def heading_anchors(page) -> set[str]:
    """GitHub's anchors of a Markdown page's headings: lower case, punctuation but - and _ dropped, spaces as -."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in page.read_text().splitlines() if line.startswith("#")}


def test_relative_links_of_the_readme_and_docs_point_at_files_and_headings_that_exist():
    broken = []
    for page in [ROOT / "README.md", ROOT / "weights" / "README.md", *DOCS.glob("*.md")]:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path, _, anchor = link.partition("#")
            target = (page.parent / path) if path else page
            if link.startswith(("http://", "https://")):
                continue
            if not target.exists() or (anchor and target.suffix == ".md" and anchor not in heading_anchors(target)):
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert broken == []


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


def test_what_a_run_writes_table_is_each_methods_declaration():
    """Each row of README's variants table names methods and, for each, exactly its declared kept variants,
    reference variants and comparisons; every method of conf/method has a row."""
    from noise_exp.methods.registry import method_classes

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## What a run writes"):].split("\n## ")[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    table = {name: cells[1:] for cells in rows for name in re.findall(r"`(\w+)`", cells[0])}
    declared = {}
    for cls in method_classes():
        declared[cls.name] = (
            [v.name for v in cls.variants if v.role == "kept"], [v.name for v in cls.variants if v.role == "reference"],
            [(c.a, c.b) for c in cls.comparisons])
    shown = {name: (sorted(re.findall(r"`(\w+)`", kept)), sorted(re.findall(r"`(\w+)`", reference)),
                    re.findall(r"`(\w+)` vs `(\w+)`", compares)) for name, (kept, reference, compares) in table.items()}
    assert shown == {name: (sorted(kept), sorted(ref), pairs) for name, (kept, ref, pairs) in declared.items()}


def cited_in() -> list:
    """The pages whose commands and paths are checked: README, docs/, conf/'s comments, the Makefile, docstrings."""
    return [ROOT / "README.md", ROOT / "tests" / "README.md", ROOT / "weights" / "README.md", *DOCS.glob("*.md"),
            ROOT / "Makefile", *sorted((ROOT / "conf").rglob("*.yaml")), *sorted((ROOT / "noise_exp").rglob("*.py"))]


def test_make_targets_modules_and_studies_the_docs_run_exist():
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    targets = {name for line in makefile.splitlines() if re.match(r"[\w -]+:", line)
               for name in line.split(":")[0].split()}
    missing = []
    for page in cited_in():
        text = page.read_text()
        missing += [f"{page.relative_to(ROOT)}: make {name}" for name in re.findall(r"`make ([\w-]+)", text)
                    if name not in targets]
        for module in re.findall(r"python -m (noise_exp(?:\.\w+)+)", text):
            path = ROOT / module.replace(".", "/")
            if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
                missing.append(f"{page.relative_to(ROOT)}: python -m {module}")
        missing += [f"{page.relative_to(ROOT)}: study {name}" for name in re.findall(r"noise_exp\.studies (\w+)", text)
                    if not (ROOT / "noise_exp" / "studies" / f"{name}.py").is_file()]
    assert missing == []


def test_code_and_test_files_the_docs_cite_exist():
    """A module, script or test file named in the README, tests/README.md, docs/, conf/'s comments, the Makefile or
    noise_exp's docstrings exists: by its path, or, a bare `test_*.py`, somewhere under tests/ (files moved by issue
    21 left names behind)."""
    test_files = {path.name for path in (ROOT / "tests").rglob("test_*.py")}
    missing = []
    for page in cited_in():
        text = page.read_text()
        cited = re.findall(r"(?<![\w./-])((?:noise_exp|tests|scripts)/[\w./-]*\w)(?![\w<*])", text)
        missing += [f"{page.relative_to(ROOT)}: {path}" for path in cited if not (ROOT / path).exists()]
        missing += [f"{page.relative_to(ROOT)}: {name}" for name in re.findall(r"(?<![\w/.-])(test_\w+\.py)", text)
                    if name not in test_files]
    assert missing == []


def test_tests_mirror_the_packages_as_tests_readme_says():
    """Every package of noise_exp is named in tests/README.md's table and has its tests in tests/<package>/."""
    packages = sorted(path.parent.name for path in (ROOT / "noise_exp").glob("*/__init__.py"))
    row = next(line for line in (ROOT / "tests" / "README.md").read_text().splitlines()
               if line.startswith("| `noise_exp/<package>/`"))
    assert [name for name in packages if name not in re.findall(r"\w+", row)] == []
    assert [name for name in packages if not list((ROOT / "tests" / name).glob("test_*.py"))] == []


def test_the_readme_layout_names_every_top_level_folder_and_package():
    import subprocess

    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):].split("\n## ")[0]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = {path.split("/")[0] for path in tracked.splitlines() if "/" in path and not path.startswith(".")}
    packages = {path.parent.name for path in (ROOT / "noise_exp").glob("*/__init__.py")}
    assert sorted(name for name in folders | packages if not re.search(rf"(?<![\w/]){name}/", layout)) == []
