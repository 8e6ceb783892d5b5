"""The course kit: student handouts with graders, made from the concept files (the manifest: course/assignments.py).

    python course/make.py list                              the assignments in reading order, with time estimates
    python course/make.py make mae --out handout/           a student copy of the project with mae's functions blanked
    python course/make.py grade handout/ [--json results.json] [--extra_tests DIR]
                                                            points per task (--json: Gradescope's results.json)
    python course/make.py check [NAME ...]                  for instructors and CI: the graders catch wrong answers
    python course/make.py restore handout/                  paste this project's bodies back (it then grades full)

A handout is the project's files (no .git, no course/mutations.py, no kit tests) with each listed body replaced by
`raise NotImplementedError("TODO — <paper §>: <hint> [<function>]")`, plus ASSIGNMENT.md and course/handout.json
(which assignment it is). Inside a handout, `python course/make.py grade .` is the student's own grader.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from course import source  # noqa: E402
from course.assignments import ASSIGNMENTS, PAPERS  # noqa: E402

INSTRUCTOR_ONLY = ("course/mutations.py", "tests/test_course_kit.py")   # never copied into a handout
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "runs", "output", "data", ".venv"}
SKIP_SUFFIXES = (".pyc", ".pt", ".pth")
MARKER = os.path.join("course", "handout.json")
EXTRA_DIR = "tests/_extra_tests"


def die(msg):
    raise SystemExit(f"course/make.py: {msg}")


def get(name):
    for a in ASSIGNMENTS:
        if a["name"] == name:
            return a
    die(f"no assignment '{name}'; choose one of: {', '.join(a['name'] for a in ASSIGNMENTS)}")


def blanks_of(a):
    """[(module, qualname, relative path, stub message, task)] of an assignment."""
    out = []
    for task in a["tasks"]:
        for fn, cite, hint in task["blanks"]:
            module, qual = fn.split(".", 1)
            out.append((module, qual, module + ".py", source.stub_message(cite, hint, fn), task))
    return out


def entries_of(a):
    """[(task, node id, points)] of an assignment's graded tests."""
    return [(task, t, pts) for task in a["tasks"] for t, pts in task["tests"]]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ----------------------------------------------------------------------------- the project's files

def project_files(root):
    """Relative paths of the project: git's tracked + untracked-but-not-ignored files in a checkout, else a walk."""
    paths = None
    if os.path.exists(os.path.join(root, ".git")):
        try:
            out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                                 capture_output=True).stdout.decode()
            paths = [p for p in out.split("\0") if p]
        except (OSError, subprocess.CalledProcessError):
            paths = None
    if paths is None:
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("handout"))
            rel = os.path.relpath(dirpath, root)
            paths += [os.path.normpath(os.path.join(rel, f)) for f in sorted(filenames)]
    keep = []
    for p in paths:
        p = p.replace(os.sep, "/")
        top = p.split("/")[0]
        if (set(p.split("/")[:-1]) & SKIP_DIRS or p.endswith(SKIP_SUFFIXES) or not os.path.isfile(os.path.join(root, p))
                or ("/" in p and os.path.isfile(os.path.join(root, top, MARKER)))):     # a handout made in here
            continue
        keep.append(p)
    return keep


def copy_project(root, dest, exclude=INSTRUCTOR_ONLY):
    for p in project_files(root):
        if p in exclude or p == MARKER.replace(os.sep, "/"):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, p)), exist_ok=True)
        shutil.copy2(os.path.join(root, p), os.path.join(dest, p))


def _commit(root):
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----------------------------------------------------------------------------- list / make / restore

def cmd_list():
    print(f"mimlab course: {len(ASSIGNMENTS)} assignments in reading order (each handout keeps the others' code whole)\n")
    for i, a in enumerate(ASSIGNMENTS, 1):
        n_fn = len(blanks_of(a))
        pts = sum(p for _, _, p in entries_of(a))
        print(f"{i}. {a['name']:12s} {a['title']}")
        print(f"   time: {a['time']}; {len(a['tasks'])} tasks, {n_fn} functions to write, {pts} points")
        print("   read: " + "; ".join(f"{paper} {sec}" for paper, sec in a["reading"]))
        print(f"   lab:  {a['lab']['command']}  ({a['lab']['time']})\n")
    print("make a handout: python course/make.py make NAME --out DIR")


def _def_line(path, qual):
    import ast
    node = source.find_def(ast.parse(read(path)), qual)
    return node.lineno if node else 0


def assignment_md(a, handout, commit):
    i = [x["name"] for x in ASSIGNMENTS].index(a["name"]) + 1
    order = " → ".join(f"**{x['name']}**" if x is a else x["name"] for x in ASSIGNMENTS)
    total = sum(p for _, _, p in entries_of(a))
    L = [f"# Assignment {i} of {len(ASSIGNMENTS)}: `{a['name']}` — {a['title']}", "",
         f"Time on a laptop CPU: {a['time']}. Reading order of the course: {order}.",
         f"Made from mimlab {commit} on {datetime.date.today()}; {total} points.", "", "## Read first", ""]
    L += [f"- {PAPERS.get(paper, paper)}: {sec}" for paper, sec in a["reading"]]
    L += ["", "## Your tasks", "",
          "Each function below raises `NotImplementedError(\"TODO — ...\")`: replace that line with your code (keep the",
          "signature and the docstring). Everything else in the project is complete and you may call it.", ""]
    for k, task in enumerate(a["tasks"], 1):
        pts = sum(p for _, p in task["tests"])
        L += [f"### Task {k}: `{a['name']}_{task['name']}` — {task['title']} ({pts} points)", ""]
        for fn, cite, hint in task["blanks"]:
            module, qual = fn.split(".", 1)
            L.append(f"- `{module}.py:{_def_line(os.path.join(handout, module + '.py'), qual)}` `{qual}` ({cite}): {hint}")
        if not task["blanks"]:
            L.append("- nothing new to write: these tests check the functions above together")
        L += ["", f"Graded tests (`python -m pytest -m {a['name']}_{task['name']}`):", ""]
        L += [f"- `{t}` ({p} point{'s' if p > 1 else ''})" for t, p in task["tests"]]
        L.append("")
    lab = a["lab"]
    L += ["## Test and grade yourself", "", "```bash",
          f"python -m pytest -m {a['name']} -q".ljust(34) + "# all graded tests of this assignment",
          "python course/make.py grade .".ljust(34) + "# points per task, computed as your instructor will",
          "python -m pytest -q".ljust(34) + "# everything; tests that need an unwritten function are skipped, naming it",
          "```", "", "Your instructor may also run held-back tests.", "",
          "## Lab (once the tests pass)", "", "```bash", lab["command"], "```", "",
          f"What you should see: {lab['see']}.", "", f"Time: {lab['time']}.", ""]
    return "\n".join(L)


def make_handout(name, out, root=ROOT, force=False):
    a = get(name)
    if os.path.isfile(os.path.join(root, MARKER)):
        die("this folder is itself a handout; make handouts from the full project")
    out = os.path.abspath(out)
    if os.path.exists(out) and os.listdir(out):
        if not (force and os.path.isfile(os.path.join(out, MARKER))):
            die(f"--out {out} exists and is not empty" + ("" if force else "; add --force to replace a handout"))
        shutil.rmtree(out)
    copy_project(root, out)
    for module, qual, rel, message, _ in blanks_of(a):
        path = os.path.join(out, rel)
        if not os.path.isfile(path):
            die(f"{a['name']}: {rel} does not exist (course/assignments.py names {module}.{qual})")
        try:
            write(path, source.blank(read(path), qual, message, rel))
        except source.SourceError as e:
            die(str(e))
    commit = _commit(root)
    write(os.path.join(out, MARKER), json.dumps({"assignment": name, "made_from": commit}, indent=1) + "\n")
    write(os.path.join(out, "ASSIGNMENT.md"), assignment_md(a, out, commit))
    return out


def restore_handout(handout, root=ROOT):
    """Paste the project's reference bodies back into a handout's blanked functions (it should then grade full)."""
    name = handout_name(handout)
    for module, qual, rel, _, _ in blanks_of(get(name)):
        path = os.path.join(handout, rel)
        write(path, source.restore(read(path), qual, read(os.path.join(root, rel)), rel))
    return name


def handout_name(handout):
    try:
        with open(os.path.join(handout, MARKER)) as f:
            return json.load(f)["assignment"]
    except (OSError, ValueError, KeyError):
        die(f"{handout} is not a handout (no readable {MARKER}); make one: python course/make.py make NAME --out DIR")


# ----------------------------------------------------------------------------- running pytest

def run_pytest(cwd, args, log, *, timeout=1800, trace=None, extra=None):
    """pytest in a subprocess (cwd = the project copy, so it imports that copy's code) -> (results, rc, seconds).
    results: {node id: {"outcome", "message", "output"}} from course/pytest_plugin.py."""
    report = log + ".json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMLAB_COURSE_", "PYTEST_"))}
    env.update(MIMLAB_COURSE_REPORT=report, HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    if trace:
        env["MIMLAB_COURSE_TRACE"] = trace
    if extra:
        env["MIMLAB_COURSE_EXTRA"] = extra
    # its own --basetemp: parallel runs (and other pytest sessions on the machine) never share tmp_path folders
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={log}.tmp", *args]
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)                # wait4: this run's own CPU time, for check's report
        timer.cancel()
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
    if rc < 0 and time.time() - t0 >= timeout:
        rc = "timeout"
    try:
        results = json.loads(read(report))
    except (OSError, ValueError):
        results = {}
    return results, rc, dict(wall=time.time() - t0, cpu=usage.ru_utime + usage.ru_stime)


def match(results, entry):
    """The results of an entry's items (an id without [params] covers all its parametrizations)."""
    return {k: v for k, v in results.items() if k == entry or k.startswith(entry + "[")}


def score(a, results, rc=0, extra=False):
    """[(task name, entry, points, max points, output)] for an assignment's graded entries (+ held-back tests)."""
    rows = []
    for task, entry, pts in entries_of(a):
        items = match(results, entry)
        bad = {k: v for k, v in items.items() if v["outcome"] != "passed"}
        if not items:
            why = "timed out" if rc == "timeout" else "not run: missing, renamed, or its file does not import"
            errors = [v["message"] for k, v in results.items() if k.startswith("<collect>")]
            out = f"{why}" + (f"; collection errors: {' | '.join(errors)}" if errors else "")
        else:
            out = "\n".join((f"{k[len(entry):]} " if k != entry else "") +
                            (v["message"] if v["outcome"] == "failed" else f"{v['outcome'].upper()}: {v['message']}")
                            for k, v in bad.items())
        rows.append((task["name"], entry, pts if items and not bad else 0, pts, out))
    if extra:
        for k, v in results.items():
            if k.startswith(EXTRA_DIR) or k.startswith(f"<collect> {EXTRA_DIR}"):
                ok = v["outcome"] == "passed"
                rows.append(("held-back", k, 1 if ok else 0, 1, "" if ok else f"{v['outcome'].upper()}: {v['message']}"))
    return rows


# ----------------------------------------------------------------------------- grade

def _overlay(work, root):
    """The grader's own tests, pytest.ini and course/ over a copy of the handout: students hand in code, not tests."""
    shutil.rmtree(os.path.join(work, "tests"), ignore_errors=True)
    for dirpath, _, filenames in os.walk(work):                  # a handed-in conftest.py could rewrite outcomes
        if "conftest.py" in filenames:
            os.remove(os.path.join(dirpath, "conftest.py"))
    for p in project_files(root):
        if (p.startswith(("tests/", "course/")) or p == "pytest.ini") and p not in INSTRUCTOR_ONLY:
            os.makedirs(os.path.dirname(os.path.join(work, p)), exist_ok=True)
            shutil.copy2(os.path.join(root, p), os.path.join(work, p))


def grade(handout, json_path=None, extra_tests=None, root=ROOT, timeout=1800, quiet=False):
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
        files = sorted({t.split("::")[0] for _, t, _ in entries_of(a) if os.path.isfile(os.path.join(work, t.split("::")[0]))})
        args = files + ([EXTRA_DIR] if extra_tests else []) + ["-m", name]
        results, rc, cost = run_pytest(work, args, os.path.join(tmp, "pytest.log"), timeout=timeout,
                                       extra=EXTRA_DIR + "/" if extra_tests else None)
        log = read(os.path.join(tmp, "pytest.log"))
    rows = score(a, results, rc, extra=bool(extra_tests))
    total, best = sum(r[2] for r in rows), sum(r[3] for r in rows)
    if not quiet:
        print(f"{name}: {a['title']}\nhandout {handout}\n")
        print(f"{'task':14s} {'tests passed':>12s} {'points':>9s}")
        for task in dict.fromkeys(r[0] for r in rows):
            mine = [r for r in rows if r[0] == task]
            print(f"{task:14s} {sum(r[2] == r[3] for r in mine):>7d} / {len(mine):<3d} {sum(r[2] for r in mine):>4d} / "
                  f"{sum(r[3] for r in mine):<3d}")
        print(f"{'total':14s} {sum(r[2] == r[3] for r in rows):>7d} / {len(rows):<3d} {total:>4d} / {best:<3d}\n")
        for task, entry, got, pts, out in rows:
            if got < pts:
                print(f"  FAILED [{task}] {entry}\n      " + out.replace("\n", "\n      ")[:1500])
        if total < best:
            print(f"\ntracebacks: python -m pytest -m {name}   (one task: -m {name}_<task>)")
        if rc not in (0, 1, 5):
            print(f"\npytest exited with {rc}; its output ends with:\n" + log[-3000:])
    if json_path:
        tests = [dict(name=f"{task}: {entry}", score=got, max_score=pts, output=out, visibility="visible")
                 for task, entry, got, pts, out in rows]
        write(json_path, json.dumps(dict(score=total, max_score=best, execution_time=round(cost['wall'], 1),
                                         output=f"{name}: {total} / {best} points", tests=tests), indent=1,
                                    ensure_ascii=False) + "\n")
    return dict(assignment=name, score=total, max_score=best, rows=rows)


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the assignments in reading order, with time estimates")
    m = sub.add_parser("make", help="write a student handout")
    m.add_argument("name", help=", ".join(a["name"] for a in ASSIGNMENTS))
    m.add_argument("--out", required=True, help="the handout folder to write")
    m.add_argument("--force", action="store_true", help="replace an existing handout in --out")
    g = sub.add_parser("grade", help="grade a handout: per-task points")
    g.add_argument("handout")
    g.add_argument("--json", default=None, help="write Gradescope's results.json here")
    g.add_argument("--extra_tests", default=None, help="a folder of held-back test files (1 point per test)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds before the test run is stopped")
    c = sub.add_parser("check", help="instructors/CI: every assignment's graders pass the reference and catch wrong answers")
    c.add_argument("names", nargs="*", help="assignments to check (default: all)")
    c.add_argument("--jobs", type=int, default=0, help="parallel pytest runs (default: min(2, CPU count))")
    c.add_argument("--keep", default=None, help="keep the handouts, copies and logs in this folder")
    r = sub.add_parser("restore", help="paste this project's reference bodies back into a handout")
    r.add_argument("handout")
    args = p.parse_args(argv)
    if args.cmd == "list":
        cmd_list()
    elif args.cmd == "make":
        out = make_handout(args.name, args.out, force=args.force)
        n = len(blanks_of(get(args.name)))
        print(f"wrote {out}: {n} functions blanked; see {os.path.join(out, 'ASSIGNMENT.md')}\n"
              f"grade it: python course/make.py grade {args.out}")
    elif args.cmd == "grade":
        grade(args.handout, args.json, args.extra_tests, timeout=args.timeout)
    elif args.cmd == "restore":
        name = restore_handout(os.path.abspath(args.handout))
        print(f"restored the reference bodies of '{name}' in {args.handout}")
    else:
        from course.check import check
        return check(args.names, jobs=args.jobs, keep=args.keep)
    return 0


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):       # `make.py list | head` ends quietly, as a Unix tool does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
