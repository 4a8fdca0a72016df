"""Run history: every scenario run in a SQLite database, pass rates, trends and flakes.

``lab history --record [JUNIT]`` (run by ``make lab`` after the suite) appends one run
in one transaction: a run id (the run folder's id, lab/runs.py, for a run of the suite;
else the JUnit file's digest; recording the same run twice adds nothing), its time,
the git revision, the lab configuration's hash, and
per test its verdict class, duration, throughput and, when it was re-run
(``--lab-rerun-failed``), its flake class (``flaky`` or ``consistent``, lab/flake.py).
``lab history [--last N]`` prints per test the pass rate and throughput trend over the
last N runs and flags a test *flaky* when a re-run classified it so in one of those
runs, or when runs of the same revision and configuration gave it different verdicts.
The database is ``history.sqlite`` in the lab's state directory; a database written
before a column existed gets it on the next recording and reads as NULL until then.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lab.report_cases import FLAKE, FLAKY, SKIPPED, UNCLASSIFIED, Case, read_cases
from lab.verdict import PASS

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, time TEXT NOT NULL, "
    "revision TEXT NOT NULL, config_hash TEXT NOT NULL, junit TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS results (run_id TEXT NOT NULL REFERENCES runs(run_id), "
    "test TEXT NOT NULL, verdict TEXT NOT NULL, duration REAL NOT NULL, throughput REAL)",
    "CREATE INDEX IF NOT EXISTS results_run ON results(run_id)",
)
#: Columns added to ``results`` after its first version: (name, SQL type), added when
#: missing so older databases stay readable and writable.
_ADDED_COLUMNS: tuple[tuple[str, str], ...] = ((FLAKE, "TEXT"),)
_RESULT_COLUMNS = ("run_id", "test", "verdict", "duration", "throughput",
                   *(name for name, _ in _ADDED_COLUMNS))


@dataclass(frozen=True)
class Run:
    run_id: str
    time: str
    revision: str
    config_hash: str


@dataclass(frozen=True)
class Result:
    run: Run
    test: str
    verdict: str
    duration: float
    throughput: float | None
    flake: str | None = None
    """``flaky`` or ``consistent`` when the test was re-run in that run, else None."""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}


def _migrate(conn: sqlite3.Connection) -> None:
    present = _columns(conn, "results")
    for name, kind in _ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")


@contextmanager
def transaction(db: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: concurrent recorders queue, 30 s at most)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(db, timeout=30.0, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            _migrate(conn)
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def run_id_of(junit: Path) -> str:
    return hashlib.sha256(junit.read_bytes()).hexdigest()[:16]


def record(db: Path, junit: Path, revision: str, config_hash: str,
           when: datetime | None = None, run_id: str | None = None) -> tuple[str, bool]:
    """Append the run of ``junit`` (as ``run_id``, default: the file's digest); returns
    its id and whether it was new."""
    cases = read_cases(junit)
    run_id = run_id or run_id_of(junit)
    stamp = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    with transaction(db) as conn:
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            return run_id, False
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                     (run_id, stamp, revision, config_hash, str(junit)))
        conn.executemany(f"INSERT INTO results ({', '.join(_RESULT_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * len(_RESULT_COLUMNS))})",
                         [_row(run_id, c) for c in cases])
    return run_id, True


def _row(run_id: str, case: Case) -> tuple[str, str, str, float, float | None, str | None]:
    return run_id, case.test_id, case.verdict_class, case.seconds, case.throughput, case.flake


def last_runs(db: Path, last: int) -> list[Result]:
    """Every result of the ``last`` most recent runs, oldest run first."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)) as conn:
        runs = [Run(*row) for row in conn.execute(
            "SELECT run_id, time, revision, config_hash FROM runs "
            "ORDER BY time DESC, rowid DESC LIMIT ?", (last,))][::-1]
        by_id = {r.run_id: r for r in runs}
        marks = ",".join("?" * len(runs))
        present = _columns(conn, "results")  # read-only: an old database lacks new columns
        picked = ", ".join(c if c in present else "NULL" for c in _RESULT_COLUMNS)
        rows = conn.execute(f"SELECT {picked} FROM results WHERE run_id IN ({marks})",
                            list(by_id)).fetchall()
    order = {r.run_id: i for i, r in enumerate(runs)}
    results = [Result(by_id[rid], test, verdict, duration, tput, flake)
               for rid, test, verdict, duration, tput, flake in rows]
    return sorted(results, key=lambda r: (order[r.run.run_id], r.test))


#: One letter per verdict class in the VERDICTS column ('.' = not in that run).
LETTERS = {PASS: "P", "driver crashed": "C", "driver hung": "H", "driver failed": "F",
           "lab failed": "L", SKIPPED: "s", UNCLASSIFIED: "?"}
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class TestHistory:
    """One test over the last runs (``verdicts`` and ``throughputs`` oldest first)."""

    test: str
    verdicts: tuple[str | None, ...]
    """Per run its verdict class, None when the run did not have this test."""
    throughputs: tuple[float, ...]
    flaky_on: tuple[str, ...]
    """Revisions (``revision@config``) on which this test's verdicts differed."""
    flakes: tuple[str | None, ...] = ()
    """Per run the re-run's classification (``flaky``/``consistent``), None if not re-run."""

    @property
    def flaky_reruns(self) -> int:
        """Runs in which a re-run classified this test flaky (failed, then passed)."""
        return sum(f == FLAKY for f in self.flakes)

    @property
    def ran(self) -> int:
        return sum(v is not None and v != SKIPPED for v in self.verdicts)

    @property
    def pass_rate(self) -> float | None:
        return sum(v == PASS for v in self.verdicts) / self.ran if self.ran else None


def _flaky_on(results: Sequence[Result]) -> tuple[str, ...]:
    seen: dict[str, set[str]] = {}
    for r in results:
        if r.verdict != SKIPPED:
            key = f"{r.run.revision}@{r.run.config_hash}"
            seen.setdefault(key, set()).add(r.verdict)
    return tuple(sorted(k for k, verdicts in seen.items() if len(verdicts) > 1))


def summarize(results: Sequence[Result]) -> list[TestHistory]:
    """Per test, in name order: verdict per run, throughputs, flakiness."""
    runs = list(dict.fromkeys(r.run.run_id for r in results))
    by_test: dict[str, list[Result]] = {}
    for r in results:
        by_test.setdefault(r.test, []).append(r)
    out = []
    for test, rows in sorted(by_test.items()):
        verdict_of = {r.run.run_id: r.verdict for r in rows}
        flake_of = {r.run.run_id: r.flake for r in rows}
        out.append(TestHistory(
            test=test, verdicts=tuple(verdict_of.get(run) for run in runs),
            throughputs=tuple(r.throughput for r in rows if r.throughput is not None),
            flaky_on=_flaky_on(rows), flakes=tuple(flake_of.get(run) for run in runs)))
    return out


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    spread = high - low
    return "".join(_SPARKS[int((v - low) / spread * 7) if spread else 3] for v in values)


def trend(values: Sequence[float]) -> str:
    """``<last> MB/s <sparkline> <change since the first>``, empty without values."""
    if not values:
        return ""
    text = f"{values[-1]:.1f} {sparkline(values)}"
    if len(values) > 1 and values[0] > 0:
        text += f" {(values[-1] / values[0] - 1) * 100:+.0f}%"
    return text


def short_name(test: str) -> str:
    """``tests.scenarios.test_scenarios::test_x`` -> ``test_scenarios::test_x``."""
    module, sep, name = test.rpartition("::")
    return module.rsplit(".", 1)[-1] + sep + name


def flaky_text(t: TestHistory) -> str:
    """The FLAKY cell: re-runs that classified it flaky, and revisions with mixed verdicts."""
    parts = []
    if t.flaky_reruns:
        parts.append(f"flaky on re-run in {t.flaky_reruns} of {t.ran} runs")
    if t.flaky_on:
        parts.append(f"flaky on {', '.join(t.flaky_on)}")
    return "; ".join(parts)


def runs_table(results: Sequence[Result]) -> str:
    """One line per run, oldest first (the order of the VERDICTS letters)."""
    runs: dict[Run, list[Result]] = {}
    for r in results:
        runs.setdefault(r.run, []).append(r)
    lines = []
    for i, (run, rows) in enumerate(runs.items(), 1):
        passed = sum(r.verdict == PASS for r in rows)
        lines.append(f"  {i:>2}  {run.run_id}  {run.time}  {run.revision}  "
                     f"{passed}/{len(rows)} passed")
    return "\n".join(lines)


def history_table(tests: Sequence[TestHistory]) -> str:
    head = ("TEST", "RUNS", "PASS", "VERDICTS", "MB/s TREND", "FLAKY")
    body = [(short_name(t.test), str(t.ran),
             "-" if t.pass_rate is None else f"{t.pass_rate * 100:.0f}%",
             "".join("." if v is None else LETTERS.get(v, "?") for v in t.verdicts),
             trend(t.throughputs), flaky_text(t))
            for t in tests]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [head, *body])
