"""The course kit itself (course/): make / grade / check / restore on a toy project of two assignments in
tmp_path, the ast surgery on awkward code, the answer detector of check (h), the kit's layering, the real
manifest and handouts against the code, course/README.md's commands. `check` over all five assignments (the run
that keeps the graders from rotting) is its own CI step: `python course/make.py check` (.ci/run).
Instructor-only: this file is never copied into a handout."""
import ast
import json
import os
import subprocess
import sys

import pytest

from course import source

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = sorted(f for f in os.listdir(os.path.join(REPO, "course"))
             # the kit's code, no data
             if f.endswith(".py") and f not in ("assignments.py", "mutations.py"))

TOY = '''"""A toy concept file (Toy §1, §2)."""


def double(x):
    """Twice x (Toy §1)."""
    # the answer
    doubled = sum([x] * 2, start=0 * x)
    return doubled


def helper(x):
    return double(x) + 1


def triple(x):
    """Three times x (Toy §2): the later assignment."""
    tripled = sum([x] * 3, start=0 * x)
    return tripled
'''

TESTS = '''from toy import double, helper, triple


def test_double():                       # graded (toy)
    assert double(3) == 6 and double(-2) == -4, (
        f"Toy §1: expected double(3) = 6, double(-2) = -4, got {double(3)}")


def test_helper_uses_double():           # not graded; reaches the stub, so skipped in the handout
    assert helper(1) == 3


def test_independent():                  # not graded; passes everywhere
    assert 1 + 1 == 2


def test_triple():                       # graded (triple, the later assignment); skipped in toy's handout
    assert triple(2) == 6, f"Toy §2: expected triple(2) = 6, got {triple(2)}"
'''

MANIFEST = '''PAPERS = {"Toy": "A. Author, The Toy Paper (2026)"}
ASSIGNMENTS = [dict(name="toy", title="Doubling", time="5 min", reading=[("Toy", "§1")],
                    tasks=[dict(name="double", title="Double it",
                                blanks=[("toy.double", "Toy §1", "add x to itself")],
                                tests=[("tests/test_toy.py::test_double", 2)] + EXTRA_TESTS)],
                    lab=dict(command="python -c 'import toy; print(toy.double(21))'", see="42",
                             expect=[("stdout", r"(\\d+)", 42, 42)], time="1 s")),
               dict(name="triple", title="Tripling", time="5 min", reading=[("Toy", "§2")],
                    tasks=[dict(name="triple", title="Triple it",
                                blanks=[("toy.triple", "Toy §2", "x three times")],
                                tests=[("tests/test_toy.py::test_triple", 1)])],
                    lab=dict(command="python -c 'import toy; print(toy.triple(14))'", see="TRIPLE_SEE",
                             expect=[("stdout", r"(\\d+)", TRIPLE_SEE, TRIPLE_SEE)], time="1 s"))]
'''


def _toy(root, extra_tests="[]", mutations=None, more_tests="", triple_see="42"):
    os.makedirs(root / "course")
    os.makedirs(root / "tests")
    for f in KIT:
        (root / "course" / f).write_text(open(os.path.join(REPO, "course", f)).read())
    (root / "course" / "assignments.py").write_text(MANIFEST.replace("EXTRA_TESTS", extra_tests)
                                                    .replace("TRIPLE_SEE", triple_see))
    muts = mutations or [("toy", "toy.double", [("[x] * 2", "[x] * 3")], "triples"),
                         ("triple", "toy.triple", [("[x] * 3", "[x] * 4")], "quadruples")]
    (root / "course" / "mutations.py").write_text(f"MUTATIONS = {muts!r}\n")
    (root / "toy.py").write_text(TOY)
    (root / "pytest.ini").write_text("[pytest]\npythonpath = .\ntestpaths = tests\naddopts = -p "
                                     "no:cacheprovider\n")
    (root / "tests" / "conftest.py").write_text(
        "from course.pytest_plugin import (pytest_collection_modifyitems, pytest_collectreport, "
        "pytest_configure,  # noqa\n    pytest_runtest_logreport, pytest_runtest_makereport, "
        "pytest_runtest_protocol, pytest_sessionfinish)\n")
    (root / "tests" / "test_toy.py").write_text(TESTS + more_tests)
    return root


def _kit(cwd, *args, check=True, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMLAB_COURSE_", "PYTEST_"))}
    r = subprocess.run([sys.executable, "course/make.py", *args], cwd=cwd, capture_output=True, text=True,
                       env=env, timeout=timeout)
    assert not check or r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _pytest(cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMLAB_COURSE_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs"], cwd=cwd, capture_output=True,
                          text=True, env=env).stdout


def _paste_reference_back(handout_file, reference_file, name):
    """Independent of course/source.py: swap the handout's def for the reference's, located with ast."""
    def span(text):
        node = next(n for n in ast.parse(text).body if getattr(n, "name", None) == name)
        return node.lineno, node.end_lineno
    hand, ref = open(handout_file).read().splitlines(True), open(reference_file).read().splitlines(True)
    (h0, h1), (r0, r1) = span("".join(hand)), span("".join(ref))
    open(handout_file, "w").write("".join(hand[:h0 - 1] + ref[r0 - 1:r1] + hand[h1:]))


def test_toy_make_grade_restore_and_gradescope_json(tmp_path):
    proj = _toy(tmp_path / "proj")
    _kit(proj, "make", "toy", "--out", str(tmp_path / "h"))
    h = tmp_path / "h"
    toy = (h / "toy.py").read_text()
    assert 'raise NotImplementedError("TODO — Toy §1: add x to itself [toy.double]")' in toy
    assert '"""Twice x (Toy §1)."""' in toy and "def helper(x):" in toy      # docstring and the rest kept
    assert "sum([x]" not in toy and "# the answer" not in toy                # the body and its comments gone
    assert not (h / "course" / "mutations.py").exists() and not (h / ".git").exists()
    assert json.loads((h / "course" / "handout.json").read_text())["assignment"] == "toy"
    md = (h / "ASSIGNMENT.md").read_text()
    assert "Toy §1" in md and "python course/make.py grade ." in md and "`toy.py:4` `double`" in md
    # the fast command; later stubs named
    assert "python -m pytest -m toy -q" in md and "`triple`" in md
    # untouched: 0 points, the failure names the TODO and the paper section; Gradescope's results.json shape
    r = _kit(proj, "grade", str(h), "--json", str(tmp_path / "results.json"))
    assert "total" in r.stdout and "0 / 2" in r.stdout and "TODO — Toy §1" in r.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["score"] == 0 and isinstance(res["tests"], list) and len(res["tests"]) == 1
    assert set(res["tests"][0]) >= {"name", "score", "max_score", "output", "visibility"}
    assert res["tests"][0]["max_score"] == 2
    assert res["tests"][0]["output"].startswith("NotImplementedError: TODO — Toy §1")
    # the student's own one-line grade, inside the handout, agrees
    assert "0 / 2" in _kit(h, "grade", ".").stdout
    # in the handout the graded test fails, the ones reaching a stub (its own, a later one's) are skipped
    # naming it
    out = _pytest(h)
    summary = out.split("short test summary")[-1]
    assert "1 failed, 1 passed, 2 skipped" in out and "[toy.double]" in summary, out
    assert "TODO — assignment 2 'triple' (later in the course) writes this: Toy §2 [toy.triple]" in summary
    # the reference body pasted back: full points
    _paste_reference_back(h / "toy.py", proj / "toy.py", "double")
    r = _kit(proj, "grade", str(h), "--json", str(tmp_path / "full.json"))
    assert json.loads((tmp_path / "full.json").read_text())["score"] == 2 and "2 / 2" in r.stdout
    # make.py restore does the same from a fresh handout: its own function back, the later one still a stub
    _kit(proj, "make", "toy", "--out", str(tmp_path / "h2"))
    _kit(proj, "restore", str(tmp_path / "h2"))
    restored = (tmp_path / "h2" / "toy.py").read_text()
    assert restored.split("def triple")[0] == TOY.split("def triple")[0]
    assert "[toy.triple]" in restored and "tripled = sum" not in restored
    # held-back tests: one point each, run against the handout's code
    extra = tmp_path / "held_back"
    extra.mkdir()
    (extra / "test_more.py").write_text("from toy import double\n\ndef test_big():\n    assert double(10 ** "
                                        "6) == 2 * 10 ** 6\n")
    res = _kit(proj, "grade", str(tmp_path / "h2"), "--extra_tests", str(extra), "--json",
               str(tmp_path / "x.json"))
    assert json.loads((tmp_path / "x.json").read_text())["score"] == 3, res.stdout
    assert "3 / 3" in _kit(proj, "grade", str(h), "--extra_tests", str(extra)).stdout
    # bad input: one-line errors
    assert "not a handout" in _kit(proj, "grade", str(proj / "tests"), check=False).stderr
    assert "exists and is not empty" in _kit(proj, "make", "toy", "--out", str(h), check=False).stderr
    assert "no assignment 'nope'; choose one of: toy, triple" in _kit(proj, "make", "nope", "--out", "x",
                                                                    check=False).stderr


def test_toy_handout_holds_no_later_solution(tmp_path):
    """Issue 18 item 3: the first assignment's handout holds no solution of a LATER assignment either: its
    functions are stubs naming their assignment (the earlier ones stay whole: the second handout has
    double)."""
    proj = _toy(tmp_path / "proj")
    _kit(proj, "make", "toy", "--out", str(tmp_path / "first"))
    _kit(proj, "make", "triple", "--out", str(tmp_path / "second"))
    first, second = (tmp_path / "first" / "toy.py").read_text(), (tmp_path / "second" / "toy.py").read_text()
    assert "tripled = sum" not in first and "doubled = sum" not in first
    assert "TODO — assignment 2 'triple' (later in the course) writes this: Toy §2 [toy.triple]" in first
    assert "doubled = sum([x] * 2, start=0 * x)" in second and "tripled = sum" not in second


def test_toy_restore_inside_a_handout_says_why_not(tmp_path):
    """Issue 18 item 8: inside a handout there are no reference bodies to paste: exit 1 with the reason, files
    untouched (it printed "restored ..." and exited 0, leaving every stub)."""
    proj = _toy(tmp_path / "proj")
    _kit(proj, "make", "toy", "--out", str(tmp_path / "h"))
    before = (tmp_path / "h" / "toy.py").read_text()
    r = _kit(tmp_path / "h", "restore", ".", check=False)
    assert r.returncode == 1 and "restored" not in r.stdout
    assert "is a handout" in r.stderr and "instructor's copy" in r.stderr, r.stderr
    assert (tmp_path / "h" / "toy.py").read_text() == before


def test_toy_held_back_tests_hidden_until_published(tmp_path):
    """Issue 18 item 4: held-back tests are Gradescope "after_published" unless --show_extra_tests."""
    proj = _toy(tmp_path / "proj")
    _kit(proj, "make", "toy", "--out", str(tmp_path / "h"))
    extra = tmp_path / "held_back"
    extra.mkdir()
    (extra / "test_more.py").write_text("from toy import double\n\ndef test_big():\n    assert double(7) == "
                                        "14\n")
    h = str(tmp_path / "h")
    _kit(proj, "grade", h, "--extra_tests", str(extra), "--json", str(tmp_path / "hidden.json"))
    hidden = json.loads((tmp_path / "hidden.json").read_text())
    vis = {t["name"].split(":")[0]: t["visibility"] for t in hidden["tests"]}
    assert vis == {"double": "visible", "held-back": "after_published"}, vis
    assert "held-back tests are shown when the grades are published" in hidden["output"]
    _kit(proj, "grade", h, "--extra_tests", str(extra), "--json", str(tmp_path / "shown.json"),
         "--show_extra_tests")
    shown = json.loads((tmp_path / "shown.json").read_text())
    assert {t["visibility"] for t in shown["tests"]} == {"visible"} and shown["output"] == "toy: 0 / 3 points"


def test_toy_grade_leads_with_one_line_per_failed_test(tmp_path):
    """Issue 18 item 6: a wrong answer shows the assertion message's first line (what was expected, what came,
    the paper section) on one line of its own first, then the details, cut at whole lines."""
    proj = _toy(tmp_path / "proj")
    _kit(proj, "make", "toy", "--out", str(tmp_path / "h"))
    hf = tmp_path / "h" / "toy.py"
    stub = 'raise NotImplementedError("TODO — Toy §1: add x to itself [toy.double]")'
    hf.write_text(hf.read_text().replace(stub,                                          "return 3 * x"))
    out = _kit(proj, "grade", str(tmp_path / "h")).stdout
    header = "failed, one line each (what was expected, what came, the paper section):\n"
    head = out.split(header)[1].splitlines()[0]
    want = "  [double] test_toy.py::test_double: Toy §1: expected double(3) = 6, double(-2) = -4, got 9"
    assert head == want, out
    details = out.split("\ndetails:\n")[1]
    assert "FAILED [double] tests/test_toy.py::test_double" in details and "assert" in details


def test_toy_check_passes_then_names_each_defect(tmp_path):
    good = _kit(_toy(tmp_path / "good"), "check")
    assert "check: OK" in good.stdout and "1/1 caught" in good.stdout and "1/1 ok" in good.stdout
    # one assignment; the lab commands themselves (--labs full), or none
    full = _kit(tmp_path / "good", "check", "triple", "--labs", "full").stdout
    assert "labs full" in full and "1/1 ok" in full and "check: OK" in full
    assert "not run" in _kit(tmp_path / "good", "check", "toy", "--labs", "none").stdout
    # Defects: a graded test that passes on the stub, one that reaches a later assignment's function, a
    # mutation no test catches, one caught only by a message that names nothing, a later solution copied into
    # a test file, a lab whose number is not the one its text promises, a test that computes the answer itself.
    graded = ["test_double_exists", "test_double_seven", "test_uses_triple"]
    bad = _toy(tmp_path / "bad", triple_see="43",
               extra_tests=repr([(f"tests/test_toy.py::{t}", 1) for t in graded]),
               mutations=[("toy", "toy.double", [("[x] * 2", "[x] * 3")], "triples"),
                          ("toy", "toy.double", [("start=0 * x", "start=0")], "same value for ints"),
                          ("toy", "toy.double", [("return doubled", "return doubled + (x == 7)")],
                           "wrong at 7"),
                          ("triple", "toy.triple", [("[x] * 3", "[x] * 4")], "quadruples")],
               more_tests="\n\ndef test_double_exists():\n    assert callable(double)\n\n\n"
                          "def test_double_seven():\n    assert double(7) == 14, 'wrong'\n\n\n"
                          "def test_uses_triple():\n    assert triple(1) == 3, 'Toy §2: expected 3'\n\n\n"
                          "def _copied(x):\n    tripled = sum([x] * 3, start=0 * x)\n    return tripled\n\n\n"
                          "def test_double_tensor():\n    import torch\n    x = torch.arange(5.0) + 1\n"
                          "    assert torch.equal(double(x), x * 2), 'Toy §1: got something else'\n")
    out = _kit(bad, "check", check=False)
    assert out.returncode == 1, out.stdout
    r = out.stdout
    assert "test_double_exists: PASSES on the blank handout" in r   # (b)
    assert "test_uses_triple reaches toy.triple, a function of the later assignment 'triple'" in r   # (a)
    assert "mutation 'same value for ints' (toy.double) is caught by NO graded test" in r   # (e)
    assert "toy: (d) solution text in the handout: tests/test_toy.py:" in r   # (d)
    assert "(f) tests/test_toy.py::test_double_exists:" in r and "its message must say what was expected" in r  # (f)
    assert "(f) mutation 'wrong at 7': tests/test_toy.py::test_double_seven fails with `wrong`" in r   # (f)
    assert "triple: (g) the lab" in r and "is 42, outside 43" in r   # (g)
    assert "toy: (h) tests/test_toy.py:" in r and "(mul) computes what toy.double returns" in r   # (h)
    # a renamed function is named, before anything runs
    renamed = TOY.replace("def double(", "def twice(").replace("double(x) + 1", "twice(x) + 1")
    (bad / "toy.py").write_text(renamed)
    out = _kit(bad, "check", check=False)
    assert out.returncode == 1 and "blank toy.double: no such function in toy.py" in out.stdout


def test_answer_detector_tells_a_recomputation_from_a_use(tmp_path):
    """course/answers.py (check step h): a tensor computed again outside the function is a candidate; one
    derived from the function's output, one the function was given back, a stored table or an attribute read
    is not."""
    import torch

    from course import answers
    rec = answers.Recorder(REPO, str(tmp_path / "a.jsonl"))

    def double(x):                                    # stands for a blanked function
        return x * 2

    rec.start("t")
    try:
        x = torch.arange(6.0).view(2, 3) + 1
        got = rec.call("toy.double", double, (x,), {})
        used = got + 0.0                              # derived from the answer: fine
        stored = torch.tensor([[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]])   # a literal table: fine
        again = x + x                                 # the answer computed again: a candidate
        same = rec.call("toy.same", lambda t: t.clone(), (x,), {})    # gave its input back: no answer
        # reading an attribute computes nothing (a new weight's .data holds whatever memory it was given, a
        # freed answer's values too): not a candidate
        read = torch.nn.Parameter(again).data
    finally:
        rec.finish()
    assert torch.equal(used, again) and torch.equal(stored, again) and torch.equal(same, x)
    assert torch.equal(read, again)
    lines = [json.loads(line) for line in open(tmp_path / "a.jsonl")]
    assert [(c["fn"], c["where"].split(" ")[1]) for c in lines] == [("toy.double", "(add)")], lines
    assert lines[0]["where"].startswith("tests/test_course_kit.py:") and lines[0]["inside"] == []
    fp = answers.fingerprint
    assert answers.same(fp(x), fp(x + 1e-7)) and not answers.same(fp(x), fp(x + 1e-3))
    assert answers.trivial(fp(torch.zeros(3))) and answers.trivial(fp(torch.tensor(1.0)))
    assert not answers.trivial(fp(torch.tensor(0.3))) and not answers.trivial(fp(x))


def test_the_cli_imports_the_commands_and_nothing_imports_the_cli():
    """Issue 17 item 4 / style guide §4 (as otter-grader's cli.py): make.py (the CLI) imports the commands
    course/cmd_*.py; a command imports shared helpers only, never another command; nothing imports make.py."""
    imports = {}
    for f in os.listdir(os.path.join(REPO, "course")):
        if f.endswith(".py"):
            tree = ast.parse(open(os.path.join(REPO, "course", f)).read())
            imports[f[:-3]] = {n.module.split(".", 1)[1] for n in ast.walk(tree)
                               if isinstance(n, ast.ImportFrom)
                               and (n.module or "").startswith("course.")}
    commands = {m for m in imports if m.startswith("cmd_")}
    assert commands == {"cmd_handout", "cmd_grade", "cmd_check"}
    assert commands <= imports["make"]
    for m, deps in imports.items():
        assert "make" not in deps, f"course/{m}.py imports the CLI"
        if m != "make":
            assert not deps & commands, f"course/{m}.py imports the command(s) {deps & commands}"


def test_lab_text_must_quote_the_ranges_check_holds_it_to():
    """Issue 18 item 7: each number a lab expects is written in its `see` text, so the text cannot drift."""
    import copy

    from course.assignments import ASSIGNMENTS
    from course.cmd_check import load_mutations, validate
    labs = {a["name"]: a["lab"] for a in ASSIGNMENTS}
    assert all(lab.get("expect") for lab in labs.values())
    changed = copy.deepcopy(ASSIGNMENTS)
    mae = next(a for a in changed if a["name"] == "mae")
    where, key, lo, hi = mae["lab"]["expect"][0]
    mae["lab"]["see"] = mae["lab"]["see"].replace(f"{lo:g}-{hi:g}", "1.56")
    bad = validate(REPO, changed, load_mutations(REPO))
    assert bad == [f"mae: the lab expects {key} in {lo:g}-{hi:g}, but its `see` text does not say so (quote "
                   f"the range as '{lo:g}-{hi:g}')"]


def test_real_handouts_hold_no_solution_of_their_own_or_a_later_assignment(tmp_path):
    """Issue 18 item 3 on the real project (the week-1 `vit` handout held the reference random_masking,
    forward_loss, param_groups_lrd, ...): each handout's stubs cover its own and every later assignment's
    functions, none of their statements is anywhere in it, the earlier assignments' functions are whole,
    ASSIGNMENT.md gives the fast command."""
    from course.assignments import ASSIGNMENTS
    from course.handout import make_handout, stubs_of
    from course.kit import functions_of
    for i, a in enumerate(ASSIGNMENTS):
        h = make_handout(a["name"], str(tmp_path / a["name"]), REPO)
        stubbed = {f"{m}.{q}" for m, q, _, _ in stubs_of(a)}
        assert stubbed == set().union(*(functions_of(b) for b in ASSIGNMENTS[i:])), a["name"]
        prints = set()
        for m, q, rel, _ in stubs_of(a):
            prints |= source.fingerprints(open(os.path.join(REPO, rel)).read(), q, rel)
        assert source.find_leaks(h, prints) == [], a["name"]
        for b in ASSIGNMENTS[i + 1:]:
            for fn in functions_of(b):
                m, q = fn.split(".", 1)
                body = source.body_text(open(os.path.join(h, m + ".py")).read(), q)
                whose = f"assignment {ASSIGNMENTS.index(b) + 1} '{b['name']}' (later in the course)"
                assert whose in body, fn
        for b in ASSIGNMENTS[:i]:
            for fn in functions_of(b):
                m, q = fn.split(".", 1)
                assert source.TODO not in source.body_text(open(os.path.join(h, m + ".py")).read(), q), fn
        md = open(os.path.join(h, "ASSIGNMENT.md")).read()
        assert f"python -m pytest -m {a['name']} -q" in md and "The whole suite runs every test" in md


def test_course_readme_commands_exist_and_parse():
    """course/README.md's commands: every `python course/make.py ...` line parses with the kit's own parser,
    every `-m` marker is an assignment or a task, every other `python X.py` is a file of the project."""
    import importlib
    import re
    import shlex

    from course.assignments import ASSIGNMENTS
    parser = importlib.import_module("course.make").parser()          # the test, not the kit, imports the CLI
    markers = {a["name"] for a in ASSIGNMENTS}
    markers |= {f"{a['name']}_{t['name']}" for a in ASSIGNMENTS for t in a["tasks"]}
    text = open(os.path.join(REPO, "course", "README.md")).read()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines() if ln.split("#")[0].strip()]
    assert len(lines) >= 12, lines
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "python", line
        if argv[1] == "course/make.py":
            # argparse exits (SystemExit) on a bad line
            parser.parse_args(argv[2:])
        elif argv[1:3] == ["-m", "pytest"]:
            if "-m" in argv[3:]:
                assert argv[argv.index("-m", 3) + 1] in markers, line
        else:
            assert os.path.isfile(os.path.join(REPO, argv[1])), line


AWKWARD = '''import functools


class Outer:
    class Inner:
        @functools.lru_cache(maxsize=None)
        def method(self,
                   a,   # a comment in the signature
                   b):
            # a comment before the first statement
            x = a + b
            return x
            # a trailing comment of the body

    def other(self):
        return 1
'''


def test_source_blank_restore_instrument_mutate_on_awkward_code():
    msg = source.stub_message("Paper §1", "hint", "m.Outer.Inner.method")
    out = source.blank(AWKWARD, "Outer.Inner.method", msg)
    assert "@functools.lru_cache(maxsize=None)" in out and "# a comment in the signature" in out
    assert "x = a + b" not in out and "trailing comment" not in out and "before the first" not in out
    assert f'            raise NotImplementedError("{msg}")\n\n    def other(self):' in out
    ast.parse(out)
    assert source.restore(out, "Outer.Inner.method", AWKWARD) == AWKWARD
    inst = source.instrument(AWKWARD, ["Outer.Inner.method", "Outer.other"], "m")
    assert '_course_hit("m.Outer.Inner.method")' in inst and "def _course_hit(" in inst
    ast.parse(inst)
    assert "x = a * b" in source.mutate(AWKWARD, "Outer.Inner.method", [("a + b", "a * b")])
    with pytest.raises(source.SourceError, match="0 times"):
        source.mutate(AWKWARD, "Outer.other", [("a + b", "a * b")])
    with pytest.raises(source.SourceError, match="no function or method 'Outer.nope'"):
        source.blank(AWKWARD, "Outer.nope", msg)
    # `x = a + b`: too short to be evidence
    assert source.fingerprints(AWKWARD, "Outer.Inner.method") == set()


def test_real_manifest_fits_the_code_and_the_issue():
    from course.assignments import ASSIGNMENTS
    from course.cmd_check import load_mutations, silent_asserts, validate
    from course.kit import blanks_of, entries_of
    assert [a["name"] for a in ASSIGNMENTS] == ["vit", "masking", "mae", "maskdistill", "finetune"]
    fns = {a["name"]: {f"{m}.{q}" for m, q, *_ in blanks_of(a)} for a in ASSIGNMENTS}
    required = {"vit": {"vit.sincos_pos_embed_2d", "vit.Attention.forward"},
                "masking": {"masking.random_masking", "masking.BlockMaskGenerator.__call__"},
                "mae": {"mae.patchify", "mae.MaskedAutoencoder.forward_loss"},
                "maskdistill": {"maskdistill.mim_loss", "maskdistill.normalize_target",
                                "maskdistill.Teacher.forward"},
                # issue 11
                "finetune": {"finetune.layer_id", "finetune.param_groups_lrd", "ema.ModelEma.update"}}
    for name, need in required.items():
        assert need <= fns[name], (name, need - fns[name])
    all_fns = [f for a in ASSIGNMENTS for f in fns[a["name"]]]
    # each function belongs to one assignment
    assert len(all_fns) == len(set(all_fns))
    for a in ASSIGNMENTS:
        assert a["title"] and a["time"] and a["reading"] and {"command", "see", "time"} <= set(a["lab"])
        assert all(hint and cite for t in a["tasks"] for _, cite, hint in t["blanks"])
        assert len({t for _, t, _ in entries_of(a)}) == len(entries_of(a))
    mutations = load_mutations(REPO)
    # names, tests, mutation snippets, labs
    assert validate(REPO, ASSIGNMENTS, mutations) == []
    # issue 18 items 5-6: every assert says
    assert [silent_asserts(REPO, a) for a in ASSIGNMENTS] == [[]] * 5
    for a in ASSIGNMENTS:
        assert sum(m[0] == a["name"] for m in mutations) >= 3, a["name"]
    for words in ["1/sqrt(Dh) scale", "transposed pixel layout", "affine LayerNorm", "LLRD exponent off by "
                                                                                     "one"]:
        assert any(words in m[3] for m in mutations), words
