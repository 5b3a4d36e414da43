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
