"""Print each chapter's execution time from the last `make nbval` (the budget, made visible).

`make nbval` executes every chapter once and records the seconds per chapter in
``_build/chapter_times.json`` (notebooks/conftest.py); the site build reuses those executions.
Usage: ``python tools/chapter_times.py [--budget 120] [--strict]``; ``--strict`` exits 1
when a chapter is over budget.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TIMES = Path(__file__).resolve().parent.parent / "_build" / "chapter_times.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per chapter (default 120)")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a chapter is over budget")
    args = ap.parse_args(argv)
    if not TIMES.is_file():
        print(f"{TIMES} does not exist: run `make nbval` first", file=sys.stderr)
        return 2
    times = json.loads(TIMES.read_text())
    over = 0
    print(f"{'chapter':45s} {'seconds':>8s}  status   measured")
    for name, t in sorted(times.items()):
        status = "FAILED" if not t["passed"] else ("OVER" if t["seconds"] > args.budget else "ok")
        over += status == "OVER"
        print(f"{name:45s} {t['seconds']:8.1f}  {status:7s}  {t['measured']}")
    print(f"{'total':45s} {sum(t['seconds'] for t in times.values()):8.1f}")
    return 1 if (args.strict and over) else 0


if __name__ == "__main__":
    sys.exit(main())
