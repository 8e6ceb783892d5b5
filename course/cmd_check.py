"""The command `check` of course/make.py: proof, for every assignment, that its graders are worth their
points.

  (a) the graded tests pass on the reference code, and none reaches a later assignment's function (those are
      stubs in the handout, so such a test would fail for a student whose answer is right);
  (b) every graded test FAILS on the blank handout, on a TODO stub of its own assignment (a test that passes
      on a stub is a defect; one that fails for another reason is one too);
  (c) the handout's other tests pass, or are skipped with a reason (the stub they need);
  (d) no statement of a blanked body, of this assignment or of any later one, appears anywhere in the handout
      (ast-normalized; trivial ones ignored), and no instructor-only file;
  (e) each wrong answer in course/mutations.py makes at least one graded test fail;
  (f) a failing graded test says what was expected and what came: every `assert` / assert_close in a graded
      test carries a message showing the value that came ("got ..." or tests/expect.came), and under each
      mutation the failing test's first line names the paper and says "got" (not pytest's bare `assert ...`
      introspection nor "Tensor-likes are not close!");
  (g) the lab runs in the handout with its own functions restored (`restore`; the later ones still stubs): the
      lab's quick command (`--labs full`: the lab command itself) ends well and its numbers lie in the
      manifest's ranges;
  (h) no code the handout ships computes what one of its stubs returns: in the reference run, course/answers.py
      compares every tensor the project's code (tests, concept files, experiments, course/; with what torch,
      timm or open_clip compute for it) makes outside the stubbed functions with what the stubbed functions
      return in the same test; a match not derived from the function's own output is a leak. Tests that
      compare with the official code live in tests/reference/ (instructor-only) or keep their expected values
      as fixtures (tests/fixtures/).

Cost, for CI: the reference suite runs ONCE, in a copy whose blanked functions (all assignments') record which
tests reach them (source.instrument). That run is (a) for all assignments, and it tells (c) which of a
handout's tests can behave differently from the reference at all: only those reaching a function stubbed in
that handout; the others run unchanged code, so their reference outcome is theirs. Each handout then runs once
(graded tests + those), each mutation runs its assignment's graded tests with -x (their failures are (e) and
(f)), each lab's quick command once. Runs go --jobs at a time (default: min(2, CPU count)), each with
CPU count / jobs torch threads (OMP_NUM_THREADS, unless set): two runs of two threads on two cores spend
their time waiting on each other.
"""
import ast
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from course import source
from course.assignments import ASSIGNMENTS, PAPERS
from course.handout import make_handout, restore_bodies, stubs_of
from course.kit import (INSTRUCTOR_ONLY, ROOT, blanks_of, clean_env, copy_project, entries_of, functions_of,
                        get, instructor_only, is_handout, later_than, match, read, run_logged, run_pytest, write)

PAPER_WORD = re.compile(r"(?<![\w-])(" + "|".join(re.escape(p) for p in PAPERS) + r")(?![\w-])")


def load_mutations(root):
    path = os.path.join(root, "course", "mutations.py")
    if not os.path.isfile(path):
        raise SystemExit("course/make.py check: course/mutations.py is missing (it is instructor-only: run "
                         "check in the full project, not in a handout)")
    ns = {}
    exec(compile(read(path), path, "exec"), ns)
    return ns["MUTATIONS"]


# ----------------------------------------------------------------------------- static: the manifest against
# the code

def _test_node(root, nodeid):
    """The ast node of a test function ("file::name" or "file::Class::name"), or None."""
    path, *names = nodeid.split("[")[0].split("::")
    if not os.path.isfile(os.path.join(root, path)):
        return None
    node, body = None, ast.parse(read(os.path.join(root, path))).body
    for n in names:
        node = next((x for x in body if isinstance(x, (ast.FunctionDef, ast.ClassDef)) and x.name == n), None)
        if node is None:
            return None
        body = getattr(node, "body", [])
    return node


def range_text(lo, hi):
    """How a lab's `see` text quotes a range ("0.21-0.24") or an exact number (lo == hi: "86.19")."""
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def quick_of(lab):
    """(command, expect) of a lab's quick run: its `quick`, or the lab itself when it is quick already."""
    q = lab.get("quick") or dict(command=lab["command"], expect=lab.get("expect", []))
    return q["command"], q.get("expect", [])


def validate(root, assignments, mutations):
    """Static problems, each naming what to fix: missing functions/tests (renamed?), stale mutation snippets,
    a lab whose text does not quote the ranges check holds its numbers to."""
    bad = []
    for a in assignments:
        for module, qual, rel, _, _ in blanks_of(a):
            path = os.path.join(root, rel)
            if not os.path.isfile(path) or source.find_def(ast.parse(read(path)), qual) is None:
                bad.append(f"{a['name']}: blank {module}.{qual}: no such function in {rel} (renamed? update "
                           f"course/assignments.py)")
        for _, entry, pts in entries_of(a):
            if _test_node(root, entry) is None:
                bad.append(f"{a['name']}: graded test {entry} does not exist (renamed? update "
                           "course/assignments.py)")
            if not (isinstance(pts, int) and pts > 0):
                bad.append(f"{a['name']}: {entry}: points must be a positive integer")
        for _, key, lo, hi in a["lab"].get("expect", []):
            if lo is not None and range_text(lo, hi) not in a["lab"]["see"]:
                bad.append(f"{a['name']}: the lab expects {key} in {range_text(lo, hi)}, but its `see` text "
                           f"does not say so (quote the range as '{range_text(lo, hi)}')")
    names = {a["name"] for a in assignments}
    for a_name, fn, reps, what in mutations:
        if a_name not in names:
            continue
        rel = fn.split(".", 1)[0] + ".py"
        try:
            source.mutate(read(os.path.join(root, rel)), fn.split(".", 1)[1], reps, rel)
        except (OSError, source.SourceError) as e:
            bad.append(f"{a_name}: mutation '{what}': {e}")
    return bad


def _says_what_came(msg):
    """A message (ast) that shows the value that came: its text says "got ..." or it calls expect.came / brief."""
    text = ast.unparse(msg)
    return "got " in text.lower() or "came(" in text or "brief(" in text


def silent_asserts(root, a):
    """[(entry, line, text)] of the asserts in a's graded test functions that do not say what was expected and
    what came: `assert x` with no `, msg` or a msg without the value that came ("got ..."), and
    torch.testing.assert_close(...) without such a msg= (its default names no paper and no expectation)."""
    out = []
    for _, entry, _ in entries_of(a):
        node = _test_node(root, entry)
        for n in ast.walk(node) if node is not None else ():
            if isinstance(n, ast.Assert):
                msg = n.msg
            elif isinstance(n, ast.Call) and ast.unparse(n.func).split(".")[-1] == "assert_close":
                msg = next((k.value for k in n.keywords if k.arg == "msg"), None)
            else:
                continue
            if msg is None or not _says_what_came(msg):
                out.append((entry, n.lineno, ast.unparse(n).splitlines()[0][:90]))
    return out


def explicit_first_line(v):
    """None if a failed result leads with an explicit message naming a paper and what came ("got ..."), else why
    not. A failure that is not an AssertionError is the code under test raising (its own message and traceback
    say what): accepted."""
    if v.get("exception", "AssertionError") != "AssertionError":
        return None
    first = (v["message"].strip().splitlines() or [""])[0]
    if first.startswith("assert ") or not PAPER_WORD.search(first) or "got " not in first.lower():
        return first[:160] or "(empty message)"
    return None


# ----------------------------------------------------------------------------- the runs

@dataclass
class Runs:
    """Everything the steps read: the handouts' folders, and the outcomes of every run."""
    root: str
    tmp: str
    handouts: dict = field(default_factory=dict)        # name -> handout folder
    ref: dict = field(default_factory=dict)             # node id -> result, on the instrumented reference
    ref_cost: dict = field(default_factory=dict)
    # node id -> {"module.qualname"} of blanked functions it reached
    hits: dict = field(default_factory=dict)
    # name -> (graded item ids, ids of other tests reaching a stub)
    plan: dict = field(default_factory=dict)
    handout_runs: dict = field(default_factory=dict)    # name -> (results, rc, cost)
    mutants: list = field(default_factory=list)         # [(assignment, function, what, results, rc, cost)]
    labs: dict = field(default_factory=dict)            # name -> (command, folder, rc, cost, log text)
    answers: list = field(default_factory=list)         # course/answers.py's candidate leaks (dicts)


def _graded_files(a):
    return sorted({t.split("::")[0] for _, t, _ in entries_of(a)})


def _hits(trace):
    out = {}
    if os.path.isfile(trace):
        for line in read(trace).splitlines():
            test, _, fn = line.partition("\t")
            if test:
                out.setdefault(test, set()).add(fn)
    return out


def prepare(runs, assignments, mutations, labs):
    """Handouts, their restored copies (for the labs), the instrumented reference, one copy per mutation."""
    root, tmp = runs.root, runs.tmp
    restored = {}
    for a in assignments:
        out = os.path.join(tmp, f"handout_{a['name']}")
        runs.handouts[a["name"]] = make_handout(a["name"], out, root, force=True)
        if labs:
            d = restored[a["name"]] = os.path.join(tmp, f"restored_{a['name']}")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(runs.handouts[a["name"]], d)
            restore_bodies(d, root)
    ref = os.path.join(tmp, "reference")
    shutil.rmtree(ref, ignore_errors=True)
    copy_project(root, ref)
    by_file = {}
    # every assignment's functions: a handout stubs the later ones too
    for a in ASSIGNMENTS:
        for module, qual, rel, _, _ in blanks_of(a):
            by_file.setdefault((rel, module), []).append(qual)
    for (rel, module), quals in by_file.items():
        path = os.path.join(ref, rel)
        write(path, source.instrument(read(path), quals, module, rel))
    mutants = []
    for i, (a_name, fn, reps, what) in enumerate(mutations):
        d = os.path.join(tmp, f"mutant_{i:02d}")
        shutil.rmtree(d, ignore_errors=True)
        copy_project(root, d)
        rel = fn.split(".", 1)[0] + ".py"
        write(os.path.join(d, rel), source.mutate(read(os.path.join(d, rel)), fn.split(".", 1)[1], reps, rel))
        mutants.append((a_name, fn, what, d))
    return ref, mutants, restored


def run_lab(command, cwd, log, timeout):
    """A lab command as the student types it (`python ...`): through bash, with this Python first on PATH."""
    env = clean_env(PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    rc, cost = run_logged(["bash", "-c", command], cwd, env, log, timeout)
    return rc, cost, read(log)


def run_all(runs, assignments, mutants, ref, restored, jobs, timeout, labs):
    tmp = runs.tmp
    with ThreadPoolExecutor(jobs) as pool:
        trace, answers = os.path.join(tmp, "trace.tsv"), os.path.join(tmp, "answers.jsonl")
        for f in (trace, answers):
            if os.path.exists(f):
                os.remove(f)
        ref_job = pool.submit(run_pytest, ref, [], os.path.join(tmp, "reference.log"), timeout=timeout,
                              trace=trace, answers=answers)
        mut_jobs = [pool.submit(run_pytest, d, _graded_files(get(a_name)) + ["-m", a_name, "-x"],
                                os.path.join(tmp, f"mutant_{i:02d}.log"), timeout=timeout)
                    for i, (a_name, _, _, d) in enumerate(mutants)]
        lab_jobs = {}
        for a in assignments:
            if labs:
                lab = a["lab"]
                cmd = lab["command"] if labs == "full" else quick_of(lab)[0]
                lab_jobs[a["name"]] = (cmd, restored[a["name"]], pool.submit(
                    run_lab, cmd, restored[a["name"]], os.path.join(tmp, f"lab_{a['name']}.log"), timeout))
        runs.ref, ref_rc, runs.ref_cost = ref_job.result()
        print(f"check: reference suite: {len(runs.ref)} tests in {runs.ref_cost['wall']:.0f} s (exit "
              f"{ref_rc})")
        if not runs.ref or ref_rc not in (0, 1):                # killed, timed out, or pytest itself failed
            for j in mut_jobs + [j for *_, j in lab_jobs.values()]:
                j.cancel()
            tail = read(os.path.join(tmp, "reference.log"))[-3000:]
            print(f"check: the reference run did not finish (exit {ref_rc}); its output ends with:\n{tail}")
            return False
        runs.hits = _hits(trace)
        runs.answers = [json.loads(line) for line in read(answers).splitlines()] if os.path.isfile(answers) else []
        h_jobs = {}
        for a in assignments:
            stubbed = set().union(*(functions_of(b) for b in [a] + later_than(a)))
            graded = [k for _, e, _ in entries_of(a) for k in match(runs.ref, e)]
            affected = sorted(t for t, fns in runs.hits.items()
                              if fns & stubbed and t in runs.ref and t not in graded)
            runs.plan[a["name"]] = (graded, affected)
            h_jobs[a["name"]] = pool.submit(run_pytest, runs.handouts[a["name"]], graded + affected,
                                            os.path.join(tmp, f"handout_{a['name']}.log"), timeout=timeout)
        runs.mutants = [(a_name, fn, what, *j.result())
                        for (a_name, fn, what, _), j in zip(mutants, mut_jobs)]
        runs.handout_runs = {k: j.result() for k, j in h_jobs.items()}
        runs.labs = {k: (cmd, d, *j.result()) for k, (cmd, d, j) in lab_jobs.items()}
    return True


# ----------------------------------------------------------------------------- the steps: (stat, [problems])
# each

def step_a_reference(a, runs):
    """(a) graded tests pass on the reference; none reaches a later assignment's function."""
    P, n_ref, n_all = [], 0, 0
    later = {fn: b["name"] for b in later_than(a) for fn in functions_of(b)}
    for _, entry, _ in entries_of(a):
        items = match(runs.ref, entry)
        n_all += len(items) or 1
        if not items:
            P.append(f"(a) {entry}: not collected on the reference")
        for k, v in items.items():
            if v["outcome"] == "passed":
                n_ref += 1
            else:
                P.append(f"(a) {k}: {v['outcome']} on the reference: {v['message'][:300]}")
            for fn in sorted(runs.hits.get(k, set()) & set(later)):
                P.append(f"(a) {k} reaches {fn}, a function of the later assignment '{later[fn]}' (a stub in "
                         f"this handout): it would fail for a right answer; grade it in '{later[fn]}' or "
                         "test without it")
    return f"{n_ref}/{n_all}", P


def step_b_stubs(a, runs):
    """(b) every graded test fails on the blank handout, on one of its own assignment's TODO stubs."""
    graded, _ = runs.plan[a["name"]]
    res, rc, _ = runs.handout_runs[a["name"]]
    own = functions_of(a)
    P, n_fail = [], 0
    for k in graded:
        h = res.get(k)
        if h is None:
            P.append(f"(b) {k}: did not run in the handout (exit {rc})")
        elif h["outcome"] == "passed":
            P.append(f"(b) {k}: PASSES on the blank handout: it cannot tell a stub from an answer")
        elif h["outcome"] == "skipped":
            P.append(f"(b) {k}: skipped on the blank handout ({h['message'][:200]}); graded tests must fail")
        elif source.TODO not in h["message"] + h["output"]:
            P.append(f"(b) {k}: fails on the handout, but not on a TODO stub: {h['message'][:300]}")
        elif not any(f"[{fn}]" in h["message"] + h["output"] for fn in own):
            P.append(f"(b) {k}: fails on another assignment's stub, not on one of '{a['name']}': "
                     f"{h['message'][:300]}")
        else:
            n_fail += 1
    return f"{n_fail}/{len(graded)}", P


def step_c_other_tests(a, runs):
    """(c) the handout's other tests pass or skip with a reason. Those reaching a stub ran in the handout; all
    others run the reference's code unchanged, so their reference outcome is theirs."""
    graded, affected = runs.plan[a["name"]]
    res, rc, _ = runs.handout_runs[a["name"]]
    P, n_pass, n_skip = [], 0, 0
    for k, v in runs.ref.items():
        if k.startswith("<collect>") or k in graded:
            continue
        if k in affected:
            where, outcome = "handout", res.get(k, {"outcome": "missing", "message": "did not run (exit "
                                                                                     f"{rc})"})
        else:
            where, outcome = "reference", v
        o = outcome["outcome"]
        if o == "passed":
            n_pass += 1
        elif o == "skipped" and outcome["message"].strip():
            n_skip += 1
        else:
            P.append(f"(c) {k}: {o} in the {where}: {outcome['message'][:300]}")
    for k, v in res.items():
        if k.startswith("<collect>"):
            P.append(f"(c) the handout does not collect: {k[10:]}: {v['message'][:300]}")
    return f"{n_pass} pass, {n_skip} skip", P


def step_d_leaks(a, runs):
    """(d) no statement of a stubbed body (this assignment's or a later one's) anywhere in the handout."""
    root, h = runs.root, runs.handouts[a["name"]]
    prints = set()
    for module, qual, rel, _ in stubs_of(a):
        prints |= source.fingerprints(read(os.path.join(root, rel)), qual, rel)
    leaks = source.find_leaks(h, prints)
    P = [f"(d) solution text in the handout: {f}:{n}: {s}" for f, n, s in leaks]
    P += [f"(d) the handout contains {p}" for p in INSTRUCTOR_ONLY + (".git",)
          if os.path.exists(os.path.join(h, p))]
    n_later = len(stubs_of(a)) - len(blanks_of(a))
    return f"{len(leaks)}/{len(prints)} ({len(blanks_of(a))}+{n_later} fns)", P


def step_e_mutations(a, runs):
    """(e) each wrong answer fails at least one graded test."""
    P, caught, n = [], 0, 0
    for a_name, fn, what, res, rc, _ in runs.mutants:
        if a_name != a["name"]:
            continue
        n += 1
        failed = [k for k, v in res.items() if v["outcome"] == "failed" and not k.startswith("<collect>")]
        broken = [k for k in res if k.startswith("<collect>")]
        if broken:
            P.append(f"(e) mutation '{what}' ({fn}) breaks collection: {res[broken[0]]['message'][:200]}")
        elif not failed:
            P.append(f"(e) mutation '{what}' ({fn}) is caught by NO graded test (exit {rc})")
        else:
            caught += 1
    return f"{caught}/{n} caught", P


def step_f_messages(a, runs):
    """(f) graded tests say what they expected: asserts carry messages (static), and every graded test failing
    under a mutation leads with an explicit line naming the paper (dynamic; the runs of (e), no extra
    cost)."""
    silent = silent_asserts(runs.root, a)
    P = [f"(f) {entry}:{line}: `{text}`: its message must say what was expected, what came (\"got ...\" or "
         "expect.came), and the paper section"
         for entry, line, text in silent]
    graded = {k for _, e, _ in entries_of(a) for k in match(runs.ref, e)}
    n_ok = n = 0
    for a_name, fn, what, res, _, _ in runs.mutants:
        if a_name != a["name"]:
            continue
        for k, v in res.items():
            if v["outcome"] != "failed" or k not in graded:
                continue
            n += 1
            why = explicit_first_line(v)
            if why is None:
                n_ok += 1
            else:
                P.append(f"(f) mutation '{what}': {k} fails with `{why}`: its first line must say what was "
                         f"expected, what came (\"got ...\") and name the paper ({', '.join(PAPERS)})")
    return f"{n_ok}/{n}, {len(silent)} silent", P


def lab_value(folder, log, where, key):
    """The number an `expect` entry names (None if absent): `where` is "stdout" (key: a regex, group 1) or a
    file relative to the lab's folder (.jsonl: "name@step" or "name@last"; .json: "name"; else: it exists, key
    None)."""
    if where == "stdout":
        m = re.findall(key, log)
        return float(m[-1]) if m else None
    path = os.path.join(folder, where)
    if not os.path.isfile(path):
        return None
    if key is None:
        return 1.0
    if where.endswith(".jsonl"):
        name, _, at = key.partition("@")
        rows = [json.loads(ln) for ln in read(path).splitlines() if ln.strip()]
        rows = [r for r in rows if r.get(name) is not None and (at == "last" or r.get("step") == int(at))]
        return float(rows[-1][name]) if rows else None
    v = json.loads(read(path)).get(key)
    return None if v is None else float(v)


def step_g_lab(a, runs, labs):
    """(g) the lab ends well in the restored handout (later assignments still stubs), its numbers in range."""
    if not labs:
        return "not run", []
    cmd, folder, rc, cost, log = runs.labs[a["name"]]
    lab = a["lab"]
    expect = lab.get("expect", []) if labs == "full" else quick_of(lab)[1]
    if rc != 0:
        return f"exit {rc}", [f"(g) the lab `{cmd}` exits {rc} in the restored handout; its output ends "
                              "with:\n"
                              + log[-1500:]]
    P, n_ok = [], 0
    for where, key, lo, hi in expect:
        v = lab_value(folder, log, where, key)
        if v is None or not math.isfinite(v):
            P.append(f"(g) the lab `{cmd}` gave no {key or 'file'} in {where}")
        elif lo is not None and not lo <= v <= hi:
            P.append(f"(g) the lab `{cmd}`: {key} in {where} is {v:.4g}, outside {range_text(lo, hi)} (the "
                     "range its text states: fix the code or the manifest)")
        else:
            n_ok += 1
    return f"{n_ok}/{len(expect)} ok, {cost['wall']:.0f} s", P


def step_h_answers(a, runs):
    """(h) no shipped code computes a stubbed function's value (course/answers.py's candidates, per handout)."""
    stubbed = set().union(*(functions_of(b) for b in [a] + later_than(a)))
    leaks = {}
    for c in runs.answers:
        line = c["where"].split(" ")[0]                 # "tests/test_x.py:12 (matmul)" -> its file:line
        if c["fn"] in stubbed and not set(c["inside"]) & stubbed and not instructor_only(line):
            leaks.setdefault((line, c["fn"]), c)
    P = [f"(h) {c['where']} computes what {fn} returns (in {c['test']}): a handout must not hold an answer; "
         "keep the expected value as a fixture (tests/fixtures/), check a property or a hand-computed case, or "
         "move the comparison with the official code to tests/reference/ (instructor-only)"
         for (_, fn), c in sorted(leaks.items())]
    return f"{len(leaks)} found ({len(stubbed)} fns)", P


# ----------------------------------------------------------------------------- the driver

# (column title, step); the table's cells: (a) graded tests passing on the reference; (b) failing on a stub;
# (c) the handout's other tests; (d) solution statements found / looked for (own + later functions);
# (e) mutations caught; (f) failing graded tests with an explicit first line, asserts without a message;
# (g) lab numbers in range, the lab's wall time; (h) values computed outside the stubs that they return.
STEPS = [("a", "(a) ref", step_a_reference), ("b", "(b) stubs", step_b_stubs),
         ("c", "(c) others", step_c_other_tests), ("d", "(d) leaks", step_d_leaks),
         ("e", "(e) mutants", step_e_mutations), ("f", "(f) explicit", step_f_messages),
         ("g", "(g) lab", None), ("h", "(h) answers", step_h_answers)]


def check(names=(), jobs=0, keep=None, root=ROOT, timeout=1800, labs="quick"):
    """Run (a)-(h) for the named assignments (default: all); print the table and each problem; 0 if none."""
    t0 = time.time()
    if is_handout(root):
        raise SystemExit("course/make.py check: this folder is a handout; run check in the full project")
    assignments = [get(n) for n in names] if names else list(ASSIGNMENTS)
    selected = {a["name"] for a in assignments}
    mutations = [m for m in load_mutations(root) if m[0] in selected]
    bad = validate(root, assignments, mutations)
    if bad:
        print("check: the manifest does not fit the code:\n  " + "\n  ".join(bad))
        return 1
    jobs = jobs or max(1, min(2, os.cpu_count() or 1))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))  # for the runs
    tmp = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="mimlab-check-")
    os.makedirs(tmp, exist_ok=True)
    runs = Runs(root=root, tmp=tmp)
    try:
        ref, mutants, restored = prepare(runs, assignments, mutations, labs)
        print(f"check: {len(assignments)} assignment(s), {len(mutations)} mutations, labs "
              f"{labs or 'not run'}, {jobs} parallel runs, in {tmp}")
        if not run_all(runs, assignments, mutants, ref, restored, jobs, timeout, labs):
            return 1
        stats, problems = {}, {}
        for a in assignments:
            s = stats[a["name"]] = {}
            P = problems.setdefault(a["name"], [])
            for key, _, step in STEPS:
                s[key], p = step(a, runs) if step else step_g_lab(a, runs, labs)
                P += p
        for k, v in runs.ref.items():
            if k.startswith("<collect>"):
                for a in assignments:
                    problems[a["name"]].append(f"(a) the reference does not collect: {k[10:]}: "
                                               f"{v['message']}")
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report(assignments, stats, problems, runs, time.time() - t0)
    return 0 if not any(problems.values()) else 1


def report(assignments, stats, problems, runs, seconds):
    titles = ["assignment"] + [title for _, title, _ in STEPS]
    rows = [[a["name"]] + [stats[a["name"]][k] for k, _, _ in STEPS] for a in assignments]
    widths = [max(len(r[i]) for r in [titles] + rows) for i in range(len(titles))]
    print()
    for r in [titles] + rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    n = sum(len(p) for p in problems.values())
    for name, P in problems.items():
        for msg in P:
            print(f"  {name}: {msg}")
    graded_s = {a["name"]: sum(v.get("duration", 0) for _, e, _ in entries_of(a)
                               for v in match(runs.ref, e).values())
                for a in assignments}
    print("\ngraded tests' summed durations in the reference run (it shares the CPUs with the other runs; a "
          "student's `pytest -m NAME` alone is faster): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in graded_s.items()))
    cpu = [runs.ref_cost["cpu"], sum(m[5]["cpu"] for m in runs.mutants),
           sum(c["cpu"] for *_, c in runs.handout_runs.values()),
           sum(lab[3]["cpu"] for lab in runs.labs.values())]
    print(f"\ncheck: {'OK' if n == 0 else f'{n} problem(s)'} in {seconds:.0f} s; CPU time of the runs: "
          f"reference {cpu[0]:.0f} s, {len(runs.mutants)} mutations {cpu[1]:.0f} s, {len(runs.handout_runs)} "
          f"handouts {cpu[2]:.0f} s, {len(runs.labs)} labs {cpu[3]:.0f} s")


def cmd_check(names=(), jobs=0, keep=None, labs="quick"):
    return check(names, jobs=jobs, keep=keep, labs=None if labs == "none" else labs)
