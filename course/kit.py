"""Shared helpers of the course kit, below every command (course/cmd_*.py) and imported by them; they import
no command.

  the manifest     get, later_than, blanks_of, entries_of: course/assignments.py as lists
  the project      project_files, copy_project, handout_name: which files a handout or a test copy is made of
  pytest           run_pytest, match: one pytest run in a subprocess -> per-test outcomes
  (course/pytest_plugin.py)

The layering (style guide §4, as otter-grader's cli.py does it):

  course/make.py                      the CLI: parses the command line, calls one command
  course/cmd_handout.py               list, make, restore
  course/cmd_grade.py                 grade
  course/cmd_check.py                 check, steps (a)-(h)
  course/kit.py, handout.py, source.py, assignments.py    shared: no command, no CLI
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from course import source
from course.assignments import ASSIGNMENTS

# the project this copy of course/ is in
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# never copied into a handout: the wrong answers, the kit's own tests, and the tests that compare with the
# official code (tests/reference/: a reference implementation or a library computing the answer)
INSTRUCTOR_ONLY = ("course/mutations.py", "tests/test_course_kit.py", "tests/reference/")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", "runs", "output", "data", ".venv"}
SKIP_SUFFIXES = (".pyc", ".pt", ".pth")
FIXTURES = "tests/fixtures/"        # stored inputs and expected outputs: .pt files that do ship
MARKER = os.path.join("course", "handout.json")                        # a handout's "which assignment am I"
EXTRA_DIR = "tests/_extra_tests"                                        # where grade puts held-back tests


def instructor_only(path):
    """True for a relative path (with /) that never goes into a handout."""
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in INSTRUCTOR_ONLY)


def die(msg):
    """A one-line error and exit status 1 (SystemExit with a message)."""
    raise SystemExit(f"course/make.py: {msg}")


# ----------------------------------------------------------------------------- the manifest

def get(name):
    for a in ASSIGNMENTS:
        if a["name"] == name:
            return a
    die(f"no assignment '{name}'; choose one of: {', '.join(a['name'] for a in ASSIGNMENTS)}")


def number(a):
    """1-based position of an assignment in the reading order."""
    return [x["name"] for x in ASSIGNMENTS].index(a["name"]) + 1


def later_than(a):
    """The assignments after `a` in reading order: their functions are stubbed in a's handout too (their
    solutions must not ship a week early); the earlier ones stay whole so that the code a's tests need
    runs."""
    return ASSIGNMENTS[number(a):]


def blanks_of(a):
    """[(module, qualname, relative path, stub message, task)] of an assignment."""
    out = []
    for task in a["tasks"]:
        for fn, cite, hint in task["blanks"]:
            module, qual = fn.split(".", 1)
            out.append((module, qual, module + ".py", source.stub_message(cite, hint, fn), task))
    return out


def functions_of(a):
    """{"module.Qualified.name"} that assignment `a` blanks."""
    return {f"{m}.{q}" for m, q, *_ in blanks_of(a)}


def entries_of(a):
    """[(task, node id, points)] of an assignment's graded tests."""
    return [(task, t, pts) for task in a["tasks"] for t, pts in task["tests"]]


# ----------------------------------------------------------------------------- files

def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def is_handout(root):
    return os.path.isfile(os.path.join(root, MARKER))


def handout_name(handout):
    try:
        with open(os.path.join(handout, MARKER)) as f:
            return json.load(f)["assignment"]
    except (OSError, ValueError, KeyError):
        die(f"{handout} is not a handout (no readable {MARKER}); make one: python course/make.py make NAME "
            "--out DIR")


def project_files(root):
    """Relative paths of the project: git's tracked + untracked-but-not-ignored files in a checkout, else a
    walk."""
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
        if (set(p.split("/")[:-1]) & SKIP_DIRS or (p.endswith(SKIP_SUFFIXES) and not p.startswith(FIXTURES))
                or not os.path.isfile(os.path.join(root, p))
                # a handout made in here
                or ("/" in p and os.path.isfile(os.path.join(root, top, MARKER)))):
            continue
        keep.append(p)
    return keep


def copy_project(root, dest, exclude=instructor_only):
    for p in project_files(root):
        if exclude(p) or p == MARKER.replace(os.sep, "/"):
            continue
        os.makedirs(os.path.dirname(os.path.join(dest, p)), exist_ok=True)
        shutil.copy2(os.path.join(root, p), os.path.join(dest, p))


def commit_of(root):
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ----------------------------------------------------------------------------- running pytest

def clean_env(**extra):
    """os.environ without the kit's variables (a nested pytest must not write into its parent's report)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMLAB_COURSE_", "PYTEST_"))}
    env.update(HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run_pytest(cwd, args, log, *, timeout=1800, trace=None, extra=None, answers=None):
    """pytest in a subprocess (cwd = the project copy, so it imports that copy's code) -> (results, rc, cost).
    results: {node id: {"outcome", "message", "output", "exception", "duration"}} from
    course/pytest_plugin.py; cost: {"wall", "cpu"} seconds. trace / answers: the instrumented reference's
    records (which test reaches which blanked function; course/answers.py's candidates)."""
    report = log + ".json"
    env = clean_env(MIMLAB_COURSE_REPORT=report)
    if trace:
        env["MIMLAB_COURSE_TRACE"] = trace
    if answers:
        env["MIMLAB_COURSE_ANSWERS"] = answers
    if extra:
        env["MIMLAB_COURSE_EXTRA"] = extra
    # its own --basetemp: parallel runs (and other pytest sessions on the machine) never share tmp_path
    # folders
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={log}.tmp", *args]
    rc, cost = run_logged(cmd, cwd, env, log, timeout)
    try:
        results = json.loads(read(report))
    except (OSError, ValueError):
        results = {}
    return results, rc, cost


def run_logged(cmd, cwd, env, log, timeout):
    """Run `cmd` with stdout + stderr into `log` -> (exit status or "timeout", {"wall", "cpu"} seconds)."""
    t0 = time.time()
    with open(log, "w") as f:
        # its own process group (start_new_session): a timeout kills it and its children
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timer = threading.Timer(timeout, _kill_group, (proc.pid,))      # the run and its children (a shell's)
        timer.start()
        # wait4: this run's own CPU time, for check's report
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
    if rc < 0 and time.time() - t0 >= timeout:
        rc = "timeout"
    return rc, dict(wall=time.time() - t0, cpu=usage.ru_utime + usage.ru_stime)


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:                                             # it ended meanwhile
        pass


_COUNTS = {}


def count_tests(folder):
    """How many tests pytest collects in `folder` (a handout: its own tests/), counted when asked (a handout's
    ASSIGNMENT.md states it); the same test files give the same count, so it is computed once per content."""
    import hashlib
    digest = hashlib.sha256()
    tests = os.path.join(folder, "tests")
    for dirpath, dirnames, filenames in sorted(os.walk(tests)):
        dirnames.sort()
        for fn in sorted(f for f in filenames if f.endswith(".py")):
            with open(os.path.join(dirpath, fn), "rb") as f:
                digest.update(fn.encode() + f.read())
    key = digest.hexdigest()
    if key not in _COUNTS:
        r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                           cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=600)
        found = [int(line.split()[0]) for line in r.stdout.splitlines()
                 if line.split()[:1] and line.split()[0].isdigit() and " collected" in line]
        _COUNTS[key] = found[-1] if found else None
    return _COUNTS[key]


def match(results, entry):
    """The results of an entry's items (an id without [params] covers all its parametrizations)."""
    return {k: v for k, v in results.items() if k == entry or k.startswith(entry + "[")}
