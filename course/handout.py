"""Building a handout (shared by the commands `make` and `check`; it imports no command).

A handout of assignment k is the project (course/kit.copy_project) with
  - k's functions blanked: `raise NotImplementedError("TODO — <paper §>: <hint> [<function>]")`, the student's
    tasks;
  - every LATER assignment's functions blanked too, with a stub that says whose they are: their solutions must
    not ship weeks early (earlier assignments stay whole, so the code k's tests and lab need runs);
  - course/handout.json (which assignment) and ASSIGNMENT.md (reading, tasks, hints, tests, lab).
`restore_bodies` pastes the project's bodies of k's own functions back (a handout that should then grade
full).
"""
import ast
import datetime
import json
import os
import shutil

from course import source
from course.assignments import ASSIGNMENTS, PAPERS
from course.kit import (MARKER, blanks_of, commit_of, copy_project, count_tests, die, entries_of, get,
                        handout_name, is_handout, later_than, number, read, write)

try:                                          # "the whole suite takes ...": measured numbers, in the manifest
    from course.assignments import SUITE
except ImportError:                           # a manifest without them (the kit's toy project)
    SUITE = None


def later_stub_message(b, cite, fn):
    """The stub of a function that a LATER assignment `b` asks for (it starts with TODO — like any stub, so
    tests that reach it are skipped in the handout, naming it)."""
    return (f"{source.TODO} assignment {number(b)} '{b['name']}' (later in the course) writes this: "
            f"{cite} [{fn}]")


def stubs_of(a):
    """[(module, qualname, relative path, stub message)]: a's own functions, then every later assignment's."""
    out = [(m, q, rel, msg) for m, q, rel, msg, _ in blanks_of(a)]
    for b in later_than(a):
        for task in b["tasks"]:
            for fn, cite, _ in task["blanks"]:
                m, q = fn.split(".", 1)
                out.append((m, q, m + ".py", later_stub_message(b, cite, fn)))
    return out


def make_handout(name, out, root, force=False):
    """Write the handout of assignment `name` made from the project at `root` into `out`; returns its path."""
    a = get(name)
    if is_handout(root):
        die("this folder is itself a handout; make handouts from the full project")
    out = os.path.abspath(out)
    if os.path.exists(out) and os.listdir(out):
        if not (force and is_handout(out)):
            why = "" if force else "; add --force to replace a handout"
            die(f"--out {out} exists and is not empty{why}")
        shutil.rmtree(out)
    copy_project(root, out)
    for module, qual, rel, message in stubs_of(a):
        path = os.path.join(out, rel)
        if not os.path.isfile(path):
            die(f"{a['name']}: {rel} does not exist (course/assignments.py names {module}.{qual})")
        try:
            write(path, source.blank(read(path), qual, message, rel))
        except source.SourceError as e:
            die(str(e))
    commit = commit_of(root)
    write(os.path.join(out, MARKER), json.dumps({"assignment": name, "made_from": commit}, indent=1) + "\n")
    write(os.path.join(out, "ASSIGNMENT.md"), assignment_md(a, out, commit))
    return out


def restore_bodies(handout, root):
    """Paste the reference bodies of the handout's OWN functions back from the project at `root` (later
    assignments' stubs stay: a student who writes all of k's functions has this). Returns the assignment's
    name."""
    if is_handout(root):
        die(f"restore needs the reference bodies, and {root} is a handout (its course/make.py has none to "
            "paste): run the instructor's copy instead, e.g. python /path/to/mimlab/course/make.py restore "
            f"{handout}")
    name = handout_name(handout)
    for module, qual, rel, _, _ in blanks_of(get(name)):
        ref = read(os.path.join(root, rel))
        if source.TODO in source.body_text(ref, qual, rel):
            die(f"{root}/{rel}: {qual} is itself a stub; restore from the full project")
        path = os.path.join(handout, rel)
        write(path, source.restore(read(path), qual, ref, rel))
    return name


# ----------------------------------------------------------------------------- ASSIGNMENT.md

def _def_line(path, qual):
    node = source.find_def(ast.parse(read(path)), qual)
    return node.lineno if node else 0


def assignment_md(a, handout, commit):
    order = " → ".join(f"**{x['name']}**" if x is a else x["name"] for x in ASSIGNMENTS)
    total = sum(p for _, _, p in entries_of(a))
    L = [f"# Assignment {number(a)} of {len(ASSIGNMENTS)}: `{a['name']}` — {a['title']}", "",
         f"Time on a laptop CPU: {a['time']}. Reading order of the course: {order}.",
         f"Made from mimlab {commit} on {datetime.date.today()}; {total} points.", "", "## Read first", ""]
    L += [f"- {PAPERS.get(paper, paper)}: {sec}" for paper, sec in a["reading"]]
    L += ["", "## Your tasks", "",
          "Each function below raises `NotImplementedError(\"TODO — ...\")`: replace that line with your "
          "code (keep the",
          "signature and the docstring). The hint and the docstring state everything the graded tests check; "
          "when a",
          "test fails, its first line says what was expected, what came, and the paper section.", ""]
    for k, task in enumerate(a["tasks"], 1):
        pts = sum(p for _, p in task["tests"])
        L += [f"### Task {k}: `{a['name']}_{task['name']}` — {task['title']} ({pts} points)", ""]
        for fn, cite, hint in task["blanks"]:
            module, qual = fn.split(".", 1)
            L.append(f"- `{module}.py:{_def_line(os.path.join(handout, module + '.py'), qual)}` `{qual}` "
                     f"({cite}): {hint}")
        if not task["blanks"]:
            L.append("- nothing new to write: these tests check the functions above together")
        L += ["", f"Graded tests (`python -m pytest -m {a['name']}_{task['name']}`):", ""]
        L += [f"- `{t}` ({p} point{'s' if p > 1 else ''})" for t, p in task["tests"]]
        L.append("")
    later = later_than(a)
    if later:
        L += ["## Later assignments' functions", "",
              "The functions of the later assignments ("
              + ", ".join(f"`{b['name']}`" for b in later)
              + ") are stubs in this handout too, each saying which assignment writes it. Everything "
              "else (the earlier assignments included) is complete and you may call it; tests that need a "
              "stub are skipped, naming it.", ""]
    lab = a["lab"]
    L += ["## Test and grade yourself", "", "```bash",
          f"python -m pytest -m {a['name']} -q".ljust(34) + "# your graded tests only: fast",
          "python course/make.py grade .".ljust(34) + "# points per task, computed as your instructor will",
          "python -m pytest -q".ljust(34) + "# the whole suite; tests needing an unwritten function are "
                                            "skipped",
          "```", ""]
    if SUITE:
        n = count_tests(handout)
        L += [f"The whole suite runs every test of this handout ({n} tests, counted when it was made): "
              f"{SUITE['time']}; your graded tests alone take {SUITE['graded_time']} ({SUITE['measured']}). "
              "Run your graded "
              f"tests (`-m {a['name']}`, or one task: `-m {a['name']}_<task>`) while you work, and the whole "
              "suite once at the end.", ""]
    L += ["Your instructor may also run held-back tests.", "",
          "## Lab (once the tests pass)", "", "```bash", lab["command"], "```", "",
          f"What you should see: {lab['see']}.", "", f"Time: {lab['time']}.", ""]
    return "\n".join(L)
