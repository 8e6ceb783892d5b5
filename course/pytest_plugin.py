"""The pytest side of the course kit; tests/conftest.py imports these hooks.

- a marker per assignment (`-m mae`) and per task (`-m mae_loss`) on its graded tests, from
  course/assignments.py (minitorch's one-marker-per-task, kept in one manifest instead of decorators spread
  over the test files);
- in a handout (course/handout.json names its assignment): a NON-graded test that fails because it reaches a
  function not written yet ("TODO —": the student's, or a later assignment's) is reported as skipped, naming
  that function; graded tests fail as they are, with the TODO and its paper section in the message;
- MIMLAB_COURSE_REPORT=path: one JSON of per-test outcomes for `course/make.py grade` / `check`;
- MIMLAB_COURSE_TRACE=path: the current test's node id in MIMLAB_COURSE_TEST, read by the instrumented copy
  that `check` makes (which tests reach which blanked function);
- MIMLAB_COURSE_ANSWERS=path: course/answers.py watches each test of that copy: does code outside the blanked
  functions compute what one of them returns (check step h)?
"""
import json
import os
import threading

import pytest

from course.assignments import ASSIGNMENTS
from course.source import TODO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADED = {t: (a["name"], task["name"])
          for a in ASSIGNMENTS for task in a["tasks"] for t, _ in task["tests"]}
# grade --extra_tests: held-back tests live under this path
EXTRA = os.environ.get("MIMLAB_COURSE_EXTRA", "")


def handout_assignment(root=ROOT):
    try:
        with open(os.path.join(root, "course", "handout.json")) as f:
            return json.load(f)["assignment"]
    except (OSError, ValueError, KeyError):
        return None


HANDOUT = handout_assignment()


def graded_entry(nodeid):
    """(assignment, task, entry) of a collected test: an entry is a node id; it covers all its
    parametrizations."""
    base = nodeid.split("[", 1)[0]
    for key in (nodeid, base):
        if key in GRADED:
            return (*GRADED[key], key)
    return None


def pytest_configure(config):
    if os.environ.get("MIMLAB_COURSE_ANSWERS"):           # before the test modules import their fixtures
        from course import answers
        answers.start(str(config.rootpath), os.environ["MIMLAB_COURSE_ANSWERS"])
    for a in ASSIGNMENTS:
        config.addinivalue_line("markers",
                                f"{a['name']}: graded tests of the course assignment '{a['name']}'")
        for task in a["tasks"]:
            config.addinivalue_line("markers", f"{a['name']}_{task['name']}: graded tests of task "
                                               f"{task['name']}")


@pytest.hookimpl(tryfirst=True)                          # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        g = graded_entry(item.nodeid)
        if g:
            item.add_marker(g[0])
            item.add_marker(f"{g[0]}_{g[1]}")
        elif EXTRA and item.nodeid.startswith(EXTRA) and HANDOUT:
            item.add_marker(HANDOUT)


def _graded_here(item):
    return item.get_closest_marker(HANDOUT) is not None


def todo_line(text):
    """The first 'TODO — ...' line of an error text (also inside a subprocess's stderr in an assertion
    message)."""
    for line in str(text).splitlines():
        if TODO in line:
            return line[line.index(TODO):].strip().rstrip("')\"")
    return None


def _todo_of(excinfo, rep):
    """A TODO line behind a failure: in the exception or what caused it (SystemExit wrappers), a subprocess's
    captured output (CalledProcessError), the test's captured output, or an exception in one of its
    threads."""
    e, seen = excinfo.value, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for text in (e, getattr(e, "stderr", None), getattr(e, "stdout", None)):
            line = todo_line(text) if text else None
            if line:
                return line
        e = e.__cause__ or e.__context__
    for _, text in rep.sections:
        line = todo_line(text)
        if line:
            return line
    return _THREAD_TODO.get(rep.nodeid)


# node id -> TODO line raised in a thread the test started
_THREAD_TODO = {}


def _thread_hook(prev, nodeid):
    def hook(args):
        line = todo_line(args.exc_value)
        if line:
            _THREAD_TODO.setdefault(nodeid, line)
        return prev(args)
    return hook


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if HANDOUT and rep.failed and call.excinfo is not None and not _graded_here(item):
        line = _todo_of(call.excinfo, rep)
        if line:
            rep.outcome = "skipped"
            reason = f"Skipped: reaches an unwritten function: {line}"
            rep.longrepr = (str(item.path), (item.location[1] or 0) + 1, reason)
    if rep.failed and call.excinfo is not None and item.nodeid not in _EXCEPTIONS:
        # the exception itself, for grade's one-line summary and check (f): an `assert cond, msg` gives str()
        # =
        # "msg\nassert ..." (pytest's introspection below the message); a bare `assert` gives "assert ..."
        _EXCEPTIONS[item.nodeid] = (call.excinfo.typename, str(call.excinfo.value))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if os.environ.get("MIMLAB_COURSE_TRACE"):
        os.environ["MIMLAB_COURSE_TEST"] = item.nodeid   # inherited by subprocesses the test starts
    prev = threading.excepthook
    if HANDOUT:
        threading.excepthook = _thread_hook(prev, item.nodeid)
    recorder = None
    if os.environ.get("MIMLAB_COURSE_ANSWERS"):
        from course import answers
        recorder = answers.RECORDER
        recorder.start(item.nodeid)
    try:
        yield
    finally:
        if recorder is not None:
            recorder.finish()
    threading.excepthook = prev
    os.environ.pop("MIMLAB_COURSE_TEST", None)


# ----------------------------------------------------------------------------- per-test results for grade /
# check

_RESULTS = {}
# node id -> (exception type, str(exception)) of its failure
_EXCEPTIONS = {}


def _short(rep):
    crash = getattr(rep.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(rep.longrepr, tuple):
        return str(rep.longrepr[2]).removeprefix("Skipped: ")
    return str(rep.longrepr).strip().splitlines()[-1] if rep.longrepr else ""


def pytest_runtest_logreport(report):
    """One result per test: outcome, message (a failure: the exception's own text; a skip: its reason),
    exception (its type name, "" unless failed), output (pytest's report, its end), duration (s, setup + call
    + teardown)."""
    if not os.environ.get("MIMLAB_COURSE_REPORT"):
        return
    r = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "message": "", "exception": "", "output": "",
                                            "duration": 0.0})
    r["duration"] = round(r["duration"] + report.duration, 3)
    if report.when == "call" or report.outcome != "passed":
        # the first problem of setup/call/teardown wins
        if r["outcome"] == "passed" or report.outcome == "failed":
            r["outcome"] = report.outcome
            if report.outcome != "passed":
                kind, text = _EXCEPTIONS.get(report.nodeid, ("", "")) if report.failed else ("", "")
                r["exception"], r["message"] = kind, (text or _short(report))[:4000]
                r["output"] = (report.longreprtext or "")[-6000:]


def pytest_collectreport(report):
    if os.environ.get("MIMLAB_COURSE_REPORT") and report.failed:
        _RESULTS[f"<collect> {report.nodeid}"] = {"outcome": "error", "message": _short(report)[:2000],
                                                  "output": (report.longreprtext or "")[-6000:]}


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("MIMLAB_COURSE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_RESULTS, f, indent=1)
