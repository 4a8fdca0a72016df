"""`make faults` / `make faults-quick`: inject each fault, print the table.

    python tests/faults/run.py [--quick] [--case NAME ...]

Exit status 0 when every case survived (skipped cases do not fail the run).
"""

from __future__ import annotations

import argparse
import sys
import time

import cases as c
import daemon_cases
import disk_cases
import harness as h


def table(rows: list[c.Row]) -> str:
    head = c.Row("FAULT", "OUTCOME", "LEAKED", "MESSAGE")
    all_rows = [head, *rows]
    w = [max(len(getattr(r, f)) for r in all_rows) for f in ("fault", "outcome", "leaked")]
    return "\n".join(f"{r.fault:<{w[0]}}  {r.outcome:<{w[1]}}  {r.leaked:<{w[2]}}  {r.message}"
                     for r in all_rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="only the cases that boot no VM (CI)")
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    args = ap.parse_args(argv)
    every = (*c.CASES, *disk_cases.DISK_CASES, *daemon_cases.CASES)
    chosen = [k for k in every if (not args.quick or k.quick)
              and (not args.case or k.name in args.case)]
    rows: list[c.Row] = []
    started = time.time()
    for case in chosen:
        t0 = time.monotonic()
        h.say(f"fault case {case.name} ...")
        try:
            row = case.run()
        except Exception as exc:  # a broken case is a failed row, not a lost table
            row = c.Row(case.name, "FAILED", "?", f"case raised {type(exc).__name__}: {exc}")
        h.say(f"  {row.outcome} in {time.monotonic() - t0:.0f}s")
        rows.append(row)
    if not args.quick:
        # the suite's labs that this run wrote a config for (another run's lab is not ours)
        # (a config left by another checkout's run names that checkout's state dir)
        left = [x for lab in (c.FLT, c.TWIN)
                if lab.config.exists() and lab.config.stat().st_mtime >= started
                for x in c._down_clean(lab)]
        rows.append(c._row("final `lab down` of the suite's labs", not left, left,
                           "nothing of flt left"))
    print(table(rows))
    return 0 if all(r.outcome != "FAILED" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
