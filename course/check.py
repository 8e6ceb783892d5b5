"""`python course/make.py check`: proof, for every assignment, that its graders are worth their points.

  (a) the graded tests pass on the reference code;
  (b) every graded test FAILS on the blank handout, on one of its TODO stubs (a test that passes on a stub is a
      defect; one that fails for another reason is one too);
  (c) the handout's other tests pass, or are skipped with a reason (the stub they need);
  (d) no statement of a blanked body appears anywhere in the handout (ast-normalized; trivial ones ignored);
  (e) each wrong answer in course/mutations.py makes at least one graded test fail.

Cost, for CI: the reference suite runs ONCE, in a copy whose blanked functions record which tests reach them
(source.instrument). That run is (a) for all assignments, and it tells (c) which of a handout's tests can behave
differently from the reference at all: only those reaching a blanked function; the others run unchanged code, so
their reference outcome is theirs. Each handout then runs once (graded tests + those), each mutation runs its
assignment's graded tests with -x. Runs go --jobs at a time (default: min(2, CPU count)).
"""
import ast
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from course import source
from course.assignments import ASSIGNMENTS
from course.make import (INSTRUCTOR_ONLY, MARKER, ROOT, blanks_of, copy_project, entries_of, get, make_handout, match,
                         read, run_pytest, write)

OK = ("passed", "skipped")


def load_mutations(root):
    path = os.path.join(root, "course", "mutations.py")
    if not os.path.isfile(path):
        raise SystemExit("course/make.py check: course/mutations.py is missing (it is instructor-only: run check in "
                         "the full project, not in a handout)")
    ns = {}
    exec(compile(read(path), path, "exec"), ns)
    return ns["MUTATIONS"]


def _test_exists(root, nodeid):
    path, *names = nodeid.split("[")[0].split("::")
    if not os.path.isfile(os.path.join(root, path)):
        return False
    body = ast.parse(read(os.path.join(root, path))).body
    for n in names:
        node = next((x for x in body if isinstance(x, (ast.FunctionDef, ast.ClassDef)) and x.name == n), None)
        if node is None:
            return False
        body = getattr(node, "body", [])
    return True


def validate(root, assignments, mutations):
    """Static problems, each naming what to fix: missing functions/tests (renamed?), stale mutation snippets."""
    bad = []
    for a in assignments:
        for module, qual, rel, _, _ in blanks_of(a):
            path = os.path.join(root, rel)
            if not os.path.isfile(path) or source.find_def(ast.parse(read(path)), qual) is None:
                bad.append(f"{a['name']}: blank {module}.{qual}: no such function in {rel} (renamed? update "
                           f"course/assignments.py)")
        for _, entry, pts in entries_of(a):
            if not _test_exists(root, entry):
                bad.append(f"{a['name']}: graded test {entry} does not exist (renamed? update course/assignments.py)")
            if not (isinstance(pts, int) and pts > 0):
                bad.append(f"{a['name']}: {entry}: points must be a positive integer")
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


def _hits(trace):
    out = {}
    if os.path.isfile(trace):
        for line in read(trace).splitlines():
            test, _, fn = line.partition("\t")
            if test:
                out.setdefault(test, set()).add(fn)
    return out


def check(names=(), jobs=0, keep=None, root=ROOT, timeout=1800):
    t0 = time.time()
    if os.path.isfile(os.path.join(root, MARKER)):
        raise SystemExit("course/make.py check: this folder is a handout; run check in the full project")
    assignments = [get(n) for n in names] if names else list(ASSIGNMENTS)
    selected = {a["name"] for a in assignments}
    mutations = [m for m in load_mutations(root) if m[0] in selected]
    bad = validate(root, assignments, mutations)
    if bad:
        print("check: the manifest does not fit the code:\n  " + "\n  ".join(bad))
        return 1
    jobs = jobs or max(1, min(2, os.cpu_count() or 1))
    tmp = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="mimlab-check-")
    os.makedirs(tmp, exist_ok=True)
    problems = {a["name"]: [] for a in assignments}
    stats = {a["name"]: {} for a in assignments}
    try:
        # handouts and the leak scan (d)
        handouts = {}
        for a in assignments:
            h = handouts[a["name"]] = make_handout(a["name"], os.path.join(tmp, f"handout_{a['name']}"), root, force=True)
            prints = set()
            for module, qual, rel, _, _ in blanks_of(a):
                prints |= source.fingerprints(read(os.path.join(root, rel)), qual, rel)
            leaks = source.find_leaks(h, prints)
            problems[a["name"]] += [f"(d) solution text in the handout: {f}:{n}: {s}" for f, n, s in leaks]
            stats[a["name"]]["d"] = f"{len(prints)} statements, {len(leaks)} found"
            for p in INSTRUCTOR_ONLY + (".git",):
                if os.path.exists(os.path.join(h, p)):
                    problems[a["name"]].append(f"(d) the handout contains {p}")
        # the instrumented reference copy and one copy per mutation
        ref = os.path.join(tmp, "reference")
        shutil.rmtree(ref, ignore_errors=True)
        copy_project(root, ref)
        by_file = {}
        for a in assignments:
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
        print(f"check: {len(assignments)} assignment(s), {len(mutations)} mutations, {jobs} parallel runs, in {tmp}")

        def graded_files(a):
            return sorted({t.split("::")[0] for _, t, _ in entries_of(a)})

        with ThreadPoolExecutor(jobs) as pool:
            trace = os.path.join(tmp, "trace.tsv")
            if os.path.exists(trace):
                os.remove(trace)
            ref_job = pool.submit(run_pytest, ref, [], os.path.join(tmp, "reference.log"), timeout=timeout, trace=trace)
            mut_jobs = [pool.submit(run_pytest, d, graded_files(get(a_name)) + ["-m", a_name, "-x"],
                                    os.path.join(tmp, f"mutant_{i:02d}.log"), timeout=timeout)
                        for i, (a_name, _, _, d) in enumerate(mutants)]
            ref_res, ref_rc, ref_cost = ref_job.result()
            print(f"check: reference suite: {len(ref_res)} tests in {ref_cost['wall']:.0f} s (exit {ref_rc})")
            if not ref_res or ref_rc not in (0, 1):                # killed, timed out, or pytest itself failed
                for j in mut_jobs:
                    j.cancel()
                tail = read(os.path.join(tmp, "reference.log"))[-3000:]
                print(f"check: the reference run did not finish (exit {ref_rc}); its output ends with:\n{tail}")
                return 1
            hits = _hits(trace)
            plan, h_jobs = {}, {}
            for a in assignments:
                mine = {f"{m}.{q}" for m, q, *_ in blanks_of(a)}
                graded = [k for _, e, _ in entries_of(a) for k in match(ref_res, e)]
                affected = sorted(t for t, fns in hits.items() if fns & mine and t in ref_res and t not in graded)
                plan[a["name"]] = (graded, affected)
                h_jobs[a["name"]] = pool.submit(run_pytest, handouts[a["name"]], graded + affected,
                                                os.path.join(tmp, f"handout_{a['name']}.log"), timeout=timeout)
            mut_res = [j.result() for j in mut_jobs]
            h_res = {k: j.result() for k, j in h_jobs.items()}

        for k, v in ref_res.items():
            if k.startswith("<collect>"):
                for a in assignments:
                    problems[a["name"]].append(f"(a) the reference does not collect: {k[10:]}: {v['message']}")
        for a in assignments:
            name, P = a["name"], problems[a["name"]]
            graded, affected = plan[name]
            res, rc, _ = h_res[name]
            # (a) and (b), per graded entry
            n_ref = n_fail = 0
            for _, entry, _ in entries_of(a):
                items = match(ref_res, entry)
                if not items:
                    P.append(f"(a) {entry}: not collected on the reference")
                for k, v in items.items():
                    if v["outcome"] == "passed":
                        n_ref += 1
                    else:
                        P.append(f"(a) {k}: {v['outcome']} on the reference: {v['message'][:300]}")
                    h = res.get(k)
                    if h is None:
                        P.append(f"(b) {k}: did not run in the handout (exit {rc})")
                    elif h["outcome"] == "passed":
                        P.append(f"(b) {k}: PASSES on the blank handout: it cannot tell a stub from an answer")
                    elif h["outcome"] == "skipped":
                        P.append(f"(b) {k}: skipped on the blank handout ({h['message'][:200]}); graded tests must fail")
                    elif source.TODO not in h["message"] + h["output"]:
                        P.append(f"(b) {k}: fails on the handout, but not on a TODO stub: {h['message'][:300]}")
                    else:
                        n_fail += 1
            # (c): the tests reaching a stub ran in the handout; all others run the reference's code unchanged
            n_pass = n_skip = 0
            for k, v in ref_res.items():
                if k.startswith("<collect>") or k in graded:
                    continue
                if k in affected:
                    where, outcome = "handout", res.get(k, {"outcome": "missing", "message": f"did not run (exit {rc})"})
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
            s = stats[name]
            s["a"] = f"{n_ref}/{sum(len(match(ref_res, e)) or 1 for _, e, _ in entries_of(a))}"
            s["b"] = f"{n_fail}/{len(graded)}"
            s["c"] = f"{n_pass} pass, {n_skip} skip ({len(affected)} reach a stub)"
        for (a_name, fn, what, d), (res, rc, _) in zip(mutants, mut_res):
            failed = [k for k, v in res.items() if v["outcome"] == "failed" and not k.startswith("<collect>")]
            broken = [k for k in res if k.startswith("<collect>")]
            st = stats[a_name].setdefault("e", [0, 0])
            st[1] += 1
            if broken:
                problems[a_name].append(f"(e) mutation '{what}' ({fn}) breaks collection: {res[broken[0]]['message'][:200]}")
            elif not failed:
                problems[a_name].append(f"(e) mutation '{what}' ({fn}) is caught by NO graded test (exit {rc})")
            else:
                st[0] += 1
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'assignment':12s} {'(a) ref pass':>12s} {'(b) stubs fail':>15s}  {'(c) other tests':36s} "
          f"{'(d) leaks':24s} {'(e) mutations':>13s}")
    for a in assignments:
        s = stats[a["name"]]
        e = s.get("e", [0, 0])
        print(f"{a['name']:12s} {s['a']:>12s} {s['b']:>15s}  {s['c']:36s} {s['d']:24s} {f'{e[0]}/{e[1]} caught':>13s}")
    n = sum(len(p) for p in problems.values())
    for name, P in problems.items():
        for msg in P:
            print(f"  {name}: {msg}")
    cpu = [ref_cost["cpu"], sum(c["cpu"] for *_, c in mut_res), sum(c["cpu"] for *_, c in h_res.values())]
    print(f"\ncheck: {'OK' if n == 0 else f'{n} problem(s)'} in {time.time() - t0:.0f} s; CPU time of the pytest runs: "
          f"reference {cpu[0]:.0f} s, {len(mut_res)} mutations {cpu[1]:.0f} s, {len(h_res)} handouts {cpu[2]:.0f} s")
    return 0 if n == 0 else 1
