"""The benchmark scripts are run by hand, not in CI; this keeps them importable (no stale
imports or names after a refactor of ``helpers``) without running them."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def test_benchmark_scripts_import_and_define_main():
    scripts = sorted(BENCH.glob("*.py"))
    assert len(scripts) >= 4
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        f"for path in {[str(p) for p in scripts]!r}:\n"
        "    ns = runpy.run_path(path, run_name='imported')\n"
        "    assert callable(ns.get('main')), path + ' has no main()'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


RESULTS = BENCH / "results"
ROOT = BENCH.parent


def test_every_result_names_an_existing_script_and_has_its_table():
    """A chapter reads its settings from benchmarks/results/<name>.json; each of those says which
    committed script wrote it, and the full validation table sits beside it."""
    import json

    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        if "choice" not in result:           # a measurement (e.g. seq_throughput), not a search
            script = result.get("script")
            assert script and (ROOT / script.split()[0]).exists(), f"{path.name}: no committed script named"
            continue
        assert result["name"] == path.stem, path
        assert path.with_suffix(".csv").exists(), f"{path.name} has no validation table beside it"
        script = (result.get("notes") or {}).get("script")
        assert script, f"{path.name}: notes.script names no script"
        assert (ROOT / script.split()[0]).exists(), f"{path.name} was written by {script}, which is not committed"


def test_every_search_a_chapter_reads_is_committed():
    """read_choice / read_table / read_search calls with a literal name in a chapter find their file."""
    import json
    import re

    call = re.compile(r"read_(?:choice|table|search)\(\s*[\"']([A-Za-z0-9_]+)[\"']")
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                         if c["cell_type"] == "code")
        for name in call.findall(source):
            assert (RESULTS / f"{name}.json").exists() or (RESULTS / f"{name}.csv").exists(), \
                f"{nb.name} reads {name!r}, not in benchmarks/results/"


def test_every_script_is_listed_in_the_benchmarks_readme():
    listed = (BENCH / "README.md").read_text()
    missing = [p.name for p in sorted(BENCH.glob("*.py")) if f"`{p.name}`" not in listed]
    assert not missing, f"add these scripts to benchmarks/README.md: {missing}"
