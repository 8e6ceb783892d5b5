"""The command `grade` of course/make.py: a handout's graded tests -> points per task (+ Gradescope's
results.json).

The handout is graded in a copy overlaid with the project's own tests, pytest.ini and course/ (students hand
in code, not tests); inside a handout, `python course/make.py grade .` runs in place, as the student's own
grader. Each failed test is reported by one line first: its assertion message's first line (the graded tests'
messages say what was expected, what came, and the paper section; `check` step (f) keeps them so), then a few
more lines. Held-back tests (--extra_tests) count one point each; in results.json they are hidden from
students until the grades are published (Gradescope's "after_published") unless --show_extra_tests.
"""
import json
import os
import shutil
import tempfile
import textwrap

from course.kit import (EXTRA_DIR, ROOT, SKIP_DIRS, entries_of, get, handout_name, instructor_only, match,
                        project_files, read, run_pytest, write)

# lines of each failure shown below its first line (whole lines; pytest -m for the rest)
HEADLINE_CHARS = 160      # the one-line summary of a failure is cut here (the details show all of it)
DETAIL_LINES = 12         # wrapped lines of details per failure (pytest -m NAME for the whole traceback)
WRAP = 104


def failure_lines(v):
    """[first line, detail lines...] of one failed/skipped/errored test result."""
    if v["outcome"] != "failed":
        return [f"{v['outcome'].upper()}: {v['message']}".splitlines()[0]]
    text = (v["message"] or v["output"] or "failed").strip()
    lines = [ln.rstrip() for ln in text.splitlines()] or ["failed"]
    if v.get("exception") and v["exception"] != "AssertionError":
        lines[0] = f"{v['exception']}: {lines[0]}"           # the student's code raised: say what
    return lines


def score(a, results, rc=0, extra=False):
    """[dict(task, entry, score, max, failures=[(item, lines)])] for an assignment's graded entries, then
    (extra) one row per held-back test (task "held-back"). An entry scores its points only if all its items
    pass."""
    rows = []
    for task, entry, pts in entries_of(a):
        items = match(results, entry)
        if not items:
            why = "timed out" if rc == "timeout" else "not run: missing, renamed, or its file does not import"
            errors = [v["message"].splitlines()[0] for k, v in results.items()
                      if k.startswith("<collect>") and v["message"]]
            failures = [("", [why] + ([f"collection errors: {' | '.join(errors)}"] if errors else []))]
        else:
            failures = [(k[len(entry):], failure_lines(v)) for k, v in items.items()
                        if v["outcome"] != "passed"]
        rows.append(dict(task=task["name"], entry=entry, score=pts if items and not failures else 0, max=pts,
                         failures=failures))
    if extra:
        for k, v in results.items():
            if k.startswith(EXTRA_DIR) or k.startswith(f"<collect> {EXTRA_DIR}"):
                ok = v["outcome"] == "passed"
                rows.append(dict(task="held-back", entry=k, score=int(ok), max=1,
                                 failures=[] if ok else [("", failure_lines(v))]))
    return rows


def row_text(row, details=True):
    """A failed row as text. details=False: each item's first line (cut at HEADLINE_CHARS). details=True: each
    item's message wrapped at whole words, at most DETAIL_LINES lines, never cut mid-line."""
    out = []
    for item, lines in row["failures"]:
        head = (f"{item} " if item else "") + lines[0]
        if not details:
            out.append(head if len(head) <= HEADLINE_CHARS else head[:HEADLINE_CHARS] + " …")
            continue
        wrap = textwrap.TextWrapper(WRAP, break_on_hyphens=False)
        more_lines = textwrap.TextWrapper(WRAP, break_on_hyphens=False, initial_indent="    ",
                                          subsequent_indent="    ")
        wrapped = wrap.wrap(head) or [head]
        wrapped += [w for ln in lines[1:] for w in (more_lines.wrap(ln) or [""])]
        more = len(wrapped) - DETAIL_LINES
        out += wrapped[:DETAIL_LINES] + ([f"    … ({more} more lines)"] if more > 0 else [])
    return "\n".join(out)


def _overlay(work, root):
    """The grader's own tests, pytest.ini and course/ over a copy of the handout: students hand in code, not
    tests."""
    shutil.rmtree(os.path.join(work, "tests"), ignore_errors=True)
    # a handed-in conftest.py could rewrite outcomes
    for dirpath, _, filenames in os.walk(work):
        if "conftest.py" in filenames:
            os.remove(os.path.join(dirpath, "conftest.py"))
    for p in project_files(root):
        if (p.startswith(("tests/", "course/")) or p == "pytest.ini") and not instructor_only(p):
            os.makedirs(os.path.dirname(os.path.join(work, p)), exist_ok=True)
            shutil.copy2(os.path.join(root, p), os.path.join(work, p))


def grade(handout, json_path=None, extra_tests=None, root=ROOT, timeout=1800, quiet=False, show_extra=False):
    handout = os.path.abspath(handout)
    name = handout_name(handout)
    a = get(name)
    with tempfile.TemporaryDirectory(prefix="mimlab-grade-") as tmp:
        if os.path.samefile(handout, root) and not extra_tests:
            work = handout                                      # the student grading their own handout
        else:
            work = os.path.join(tmp, "work")
            shutil.copytree(handout, work, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.pyc"))
            if not os.path.samefile(handout, root):
                _overlay(work, root)
            if extra_tests:
                shutil.copytree(extra_tests, os.path.join(work, EXTRA_DIR), dirs_exist_ok=True)
        files = sorted({t.split("::")[0] for _, t, _ in entries_of(a)
                        if os.path.isfile(os.path.join(work, t.split("::")[0]))})
        args = files + ([EXTRA_DIR] if extra_tests else []) + ["-m", name]
        results, rc, cost = run_pytest(work, args, os.path.join(tmp, "pytest.log"), timeout=timeout,
                                       extra=EXTRA_DIR + "/" if extra_tests else None)
        log = read(os.path.join(tmp, "pytest.log"))
    rows = score(a, results, rc, extra=bool(extra_tests))
    total, best = sum(r["score"] for r in rows), sum(r["max"] for r in rows)
    if not quiet:
        print_report(a, handout, rows, rc, log)
    if json_path:
        write_gradescope(json_path, a, rows, cost, show_extra)
    return dict(assignment=name, score=total, max_score=best, rows=rows)


def print_report(a, handout, rows, rc, log):
    total, best = sum(r["score"] for r in rows), sum(r["max"] for r in rows)
    print(f"{a['name']}: {a['title']}\nhandout {handout}\n")
    print(f"{'task':14s} {'tests passed':>12s} {'points':>9s}")
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        print(f"{task:14s} {sum(r['score'] == r['max'] for r in mine):>7d} / {len(mine):<3d} "
              f"{sum(r['score'] for r in mine):>4d} / {sum(r['max'] for r in mine):<3d}")
    print(f"{'total':14s} {sum(r['score'] == r['max'] for r in rows):>7d} / {len(rows):<3d} {total:>4d} / "
          f"{best:<3d}")
    failed = [r for r in rows if r["score"] < r["max"]]
    if failed:
        print("\nfailed, one line each (what was expected, what came, the paper section):")
        for r in failed:
            first_lines = row_text(r, details=False).replace("\n", "\n      ")
            print(f"  [{r['task']}] {r['entry'].split('/')[-1]}: {first_lines}")
        print("\ndetails:")
        for r in failed:
            print(f"  FAILED [{r['task']}] {r['entry']}\n      " + row_text(r).replace("\n", "\n      "))
        print(f"\ntracebacks: python -m pytest -m {a['name']}   (one task: -m {a['name']}_<task>)")
    if rc not in (0, 1, 5):
        print(f"\npytest exited with {rc}; its output ends with:\n" + log[-3000:])


def write_gradescope(path, a, rows, cost, show_extra):
    """Gradescope's results.json: one test per graded entry (visible) and per held-back test (after_published
    unless show_extra: students see those once the instructor publishes the grades)."""
    tests = [dict(name=f"{r['task']}: {r['entry']}", score=r["score"], max_score=r["max"], output=row_text(r),
                  visibility="visible" if r["task"] != "held-back" or show_extra else "after_published")
             for r in rows]
    total, best = sum(r["score"] for r in rows), sum(r["max"] for r in rows)
    graded = [r for r in rows if r["task"] != "held-back"]
    hidden = not show_extra and len(graded) < len(rows)
    summary = f"{a['name']}: {total} / {best} points"
    if hidden:
        summary = (f"{a['name']}: {sum(r['score'] for r in graded)} / {sum(r['max'] for r in graded)} points "
                   "from the graded tests; held-back tests are shown when the grades are published")
    write(path, json.dumps(dict(score=total, max_score=best, execution_time=round(cost["wall"], 1),
                                output=summary,
                                tests=tests), indent=1, ensure_ascii=False) + "\n")


def cmd_grade(handout, json_path=None, extra_tests=None, timeout=1800, show_extra=False):
    grade(handout, json_path, extra_tests, timeout=timeout, show_extra=show_extra)
    return 0
