"""Mutation testing of the places where a bug would do the most harm (make mutation).

Each target file in mutation/targets.toml is mutated by cosmic-ray, one mutant at a time, and
only the tests mapped to it run against each mutant (``pytest -x -q -p no:cacheprovider``, on
SQLite, no xdist). The run happens in a copy of the working tree, so an interrupted run never
leaves a mutated file behind.

    python mutation/run.py                       every target
    python mutation/run.py reviews/gate.py       one target
    python mutation/run.py --changed HEAD~1 --budget 300
        only the targets the last commit touched, only the mutants on the lines it touched,
        stopping after --budget seconds (the score is then over the mutants that ran)
    python mutation/run.py --sample 4 lifecycle/services.py
        every fourth mutant only, in source order: an estimate in a quarter of the time

Prints, per file, the score: killed / (tested - equivalent), the survivors listed in
mutation/survivors.toml with their reason being justified (equivalent mutants, or lock modes
killed by the PostgreSQL tests); the others are printed as unjustified. Mutants that do not
compile, annotations and excluded operators are skipped before any test runs. Exit status 1
when a file scores below min-score.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "mutation"
BIN = Path(sys.executable).parent


@dataclass
class Mutant:
    job_id: str
    operator: str
    occurrence: int
    row: int
    function: str
    line: str
    outcome: str = "pending"  # killed | survived | skipped | pending
    diff: str = ""

    def key(self) -> tuple[str, str, str]:
        return (self.function, self.operator, self.line)


def load_config() -> dict:
    with open(HERE / "targets.toml", "rb") as handle:
        return tomllib.load(handle)


def load_survivors() -> dict[str, list[dict]]:
    path = HERE / "survivors.toml"
    if not path.exists():
        return {}
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    by_file: dict[str, list[dict]] = {}
    for entry in data.get("survivor", []):
        by_file.setdefault(entry["file"], []).append(entry)
    return by_file


def is_justified(mutant: Mutant, entries: list[dict]) -> dict | None:
    for entry in entries:
        if (
            entry["function"] == mutant.function
            and re.fullmatch(entry["operator"], mutant.operator)
            and entry["line"].strip() == mutant.line
        ):
            return entry
    return None


def changed_lines(base: str, path: str) -> set[int]:
    diff = subprocess.run(
        ["git", "diff", "-U0", base, "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows: set[int] = set()
    for match in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", diff, re.MULTILINE):
        start, count = int(match.group(1)), int(match.group(2) or "1")
        rows.update(range(start, start + count))
    return rows


def changed_targets(base: str, targets: list[str]) -> list[str]:
    names = subprocess.run(
        ["git", "diff", "--name-only", base],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [t for t in targets if t in names]


def signature_rows(source: str) -> set[int]:
    """Rows of `def` signatures and of annotations: never evaluated under
    ``from __future__ import annotations``."""
    tree = ast.parse(source)
    rows: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            end = node.body[0].lineno - 1
            rows.update(range(node.lineno, end + 1))
        annotation = node.annotation if isinstance(node, ast.AnnAssign | ast.arg) else None
        if annotation is not None and annotation.end_lineno is not None:
            rows.update(range(annotation.lineno, annotation.end_lineno + 1))
    return rows


def copy_tree(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def prepare(
    work: Path, target: str, tests: list[str], config: dict, rows: set[int] | None, sample: int
):
    """cosmic-ray init, then mark as skipped what is not worth a test run."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    defaults = config["defaults"]
    pytest_args = ["-x", "-q", "-p", "no:cacheprovider", *tests]
    command = " ".join(
        [str(BIN / "python"), "mutation/forkserver.py", str(work / "fork.sock"), *pytest_args]
    )
    session = work / "session.sqlite"
    cr_config = work / "cosmic-ray.toml"
    cr_config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target}"\n'
        f"timeout = {float(defaults['timeout'])}\n"
        "excluded-modules = []\n"
        f"test-command = {command!r}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    if session.exists():
        session.unlink()
    subprocess.run(
        [str(BIN / "cosmic-ray"), "init", str(cr_config), str(session)], cwd=work, check=True
    )
    source = (work / target).read_text()
    lines = source.splitlines()
    not_code = signature_rows(source)
    excluded = re.compile("|".join(f"(?:{e})" for e in defaults["exclude-operators"]))
    skipped = {"excluded operator": 0, "annotation or signature": 0, "does not compile": 0}
    skipped["cannot be applied"] = 0
    skipped["not on a changed line"] = 0
    skipped["not in the sample"] = 0
    candidates = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(db.pending_work_items, key=lambda i: (i.mutations[0].start_pos, i.job_id))
        for item in items:
            (spec,) = item.mutations
            reason = None
            if rows is not None and spec.start_pos[0] not in rows:
                reason = "not on a changed line"
            elif excluded.match(spec.operator_name):
                reason = "excluded operator"
            elif spec.start_pos[0] in not_code:
                reason = "annotation or signature"
            else:
                operator = get_operator(spec.operator_name)(**(spec.operator_args or {}))
                try:
                    mutated = mutate_code(source, operator, spec.occurrence)
                    compile(mutated, target, "exec")
                except SyntaxError:
                    reason = "does not compile"
                except Exception:  # cosmic-ray cannot apply it (an `except (A, B)` tuple)
                    reason = "cannot be applied"
            if reason is None and sample > 1:
                candidates += 1
                if candidates % sample != 1:
                    reason = "not in the sample"
            if reason:
                skipped[reason] += 1
                db.set_result(
                    item.job_id,
                    WorkResult(output=reason, worker_outcome=WorkerOutcome.SKIPPED),
                )
    return cr_config, session, lines, skipped, command


def collect(session: Path, lines: list[str], target: str) -> list[Mutant]:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    tree = ast.parse("\n".join(lines))
    spans: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            spans.append((node.lineno, node.end_lineno or node.lineno, node.name))

    def function_at(row: int) -> str:
        inside = [s for s in spans if s[0] <= row <= s[1]]
        return min(inside, key=lambda s: s[1] - s[0])[2] if inside else "<module>"

    mutants: list[Mutant] = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            (spec,) = item.mutations
            row = spec.start_pos[0]
            mutant = Mutant(
                job_id=item.job_id,
                operator=spec.operator_name,
                occurrence=spec.occurrence,
                row=row,
                function=function_at(row),
                line=lines[row - 1].strip(),
            )
            result = results.get(item.job_id)
            if result is None:
                mutant.outcome = "pending"
            elif result.worker_outcome == WorkerOutcome.SKIPPED:
                mutant.outcome = "skipped"
            elif result.worker_outcome == WorkerOutcome.NORMAL:
                survived = result.test_outcome == TestOutcome.SURVIVED
                mutant.outcome = "survived" if survived else "killed"
                mutant.diff = result.diff or ""
            else:
                # The mutant could not be applied or its worker crashed: not a verdict.
                mutant.outcome = "skipped"
            mutants.append(mutant)
    return mutants


def run_target(target: str, tests: list[str], config: dict, args, deadline: float | None):
    rows = changed_lines(args.changed, target) if args.changed else None
    if args.lines:
        rows = {int(n) for n in args.lines.split(",")}
    with tempfile.TemporaryDirectory(prefix="lrb-mutation-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        cr_config, session, lines, skipped, _ = prepare(
            work, target, tests, config, rows, args.sample
        )
        env = {**os.environ, "LRB_TEST_DIR": str(work)}
        env.pop("DATABASE_URL", None)  # SQLite: PostgreSQL's race tests cover the lock sites
        print(f"\n== {target}: pytest {' '.join(tests)}", flush=True)
        baseline = subprocess.run(
            [str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=work,
            env=env,
            capture_output=True,
        )
        if baseline.returncode != 0:
            print(baseline.stdout.decode()[-3000:])
            print(f"FAILED: the unmutated tests of {target} do not pass", file=sys.stderr)
            return None
        server = subprocess.Popen(
            [
                str(BIN / "python"),
                "mutation/forkserver.py",
                "serve",
                str(work / "fork.sock"),
                str(int(config["defaults"]["timeout"])),
            ],
            cwd=work,
            env=env,
            start_new_session=True,  # its forked test runs go with it
        )
        try:
            return execute(work, cr_config, session, lines, target, skipped, env, deadline)
        finally:
            os.killpg(server.pid, 9)
            server.wait()


def execute(work, cr_config, session, lines, target, skipped, env, deadline):
    for _ in range(600):
        if (work / "fork.sock").exists():
            break
        time.sleep(0.1)
    pending = sum(1 for m in collect(session, lines, target) if m.outcome == "pending")
    print(f"   {pending} mutants to test; skipped: {skipped}", flush=True)
    remaining = None if deadline is None else max(1.0, deadline - time.monotonic())
    proc = subprocess.Popen(
        [str(BIN / "cosmic-ray"), "exec", str(cr_config), str(session)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        proc.wait(timeout=remaining)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        print("   time budget spent: the score is over the mutants that ran", flush=True)
    return collect(session, lines, target)


def report(
    target: str, mutants: list[Mutant], survivors: dict, min_score: float, changed: bool
) -> bool:
    """Print the score; False when it is below ``min_score``.

    The score is the textbook one: killed / (tested - equivalent), where a survivor listed in
    survivors.toml as ``kind = "postgresql"`` (a lock mode, killed by the PostgreSQL tests)
    counts as killed and one listed as equivalent leaves the denominator. The raw figure,
    killed / tested on SQLite, is printed beside it."""
    killed = [m for m in mutants if m.outcome == "killed"]
    survived = [m for m in mutants if m.outcome == "survived"]
    pending = [m for m in mutants if m.outcome == "pending"]
    tested = len(killed) + len(survived)
    raw = 100.0 * len(killed) / tested if tested else 100.0
    entries = survivors.get(target, [])
    verdicts = [(m, is_justified(m, entries)) for m in survived]
    unjustified = [m for m, entry in verdicts if entry is None]
    elsewhere = sum(1 for _, e in verdicts if e is not None and e.get("kind") == "postgresql")
    equivalent = len(survived) - len(unjustified) - elsewhere
    counted = tested - equivalent
    score = 100.0 * (len(killed) + elsewhere) / counted if counted else 100.0
    where = " on the changed lines" if changed else ""
    print(
        f"SCORE {target}{where}: {score:.1f} % ({len(killed)} killed on SQLite + {elsewhere} "
        f"on PostgreSQL, of {counted} non-equivalent; {equivalent} equivalent; "
        f"{len(unjustified)} unjustified survivors; raw {raw:.1f} %; {len(pending)} not run)"
    )
    out = ROOT / "var" / "mutation"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / (target.replace("/", "_") + ".survivors.txt"), "w") as handle:
        for m, entry in verdicts:
            mark = "justified" if entry is not None else "UNJUSTIFIED"
            handle.write(f"## {mark} {m.row} {m.function} {m.operator}\n{m.diff}\n")
    for m in unjustified:
        print(f"   unjustified survivor {target}:{m.row} in {m.function}: {m.operator}")
        print(f"      line: {m.line}")
    if score < min_score:
        print(f"FAILED: {target} scores {score:.1f} %, below {min_score:.0f} %")
    return score >= min_score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help="target files (default: all)")
    parser.add_argument("--changed", metavar="BASE", help="only what changed since BASE")
    parser.add_argument("--budget", type=float, help="seconds for the whole run")
    parser.add_argument(
        "--lines", metavar="N,M", help="only the mutants on these lines (to re-check survivors)"
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=1,
        metavar="N",
        help="test every Nth mutant only (in source order): an estimate, for a quick look",
    )
    args = parser.parse_args()
    config = load_config()
    survivors = load_survivors()
    all_targets = list(config["targets"])
    targets = args.targets or all_targets
    for target in targets:
        if target not in config["targets"]:
            parser.error(f"{target} is not in mutation/targets.toml")
    if args.changed:
        has_base = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", args.changed + "^{commit}"],
            cwd=ROOT,
            capture_output=True,
        )
        if has_base.returncode != 0:
            print(f"No commit {args.changed} to compare with: nothing to mutate.")
            return 0
        targets = changed_targets(args.changed, targets)
        if not targets:
            print(f"No mutation target changed since {args.changed}: nothing to mutate.")
            return 0
    deadline = time.monotonic() + args.budget if args.budget else None
    ok = True
    summary: list[tuple[str, list[Mutant]]] = []
    for target in targets:
        tests = config["targets"][target]["tests"]
        mutants = run_target(target, tests, config, args, deadline)
        if mutants is None:
            ok = False
            continue
        summary.append((target, mutants))
        report(
            target, mutants, survivors, float(config["defaults"]["min-score"]), bool(args.changed)
        )
    print("\n== Mutation scores")
    for target, mutants in summary:
        min_score = float(config["defaults"]["min-score"])
        ok = report(target, mutants, survivors, min_score, bool(args.changed)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
