"""Source surgery for the course kit, done with `ast` on the text of the concept files (never by importing
them):

  find_def      the def of a qualified name ("patchify", "MaskedAutoencoder.forward_loss")
  blank         its body -> `raise NotImplementedError("TODO — <paper §>: <hint> [<module.qualname>]")`; the
                decorators, signature, docstring and the comments around the def stay
  restore       the reverse, from a reference file (to check that a handout grades full with the reference
  bodies) instrument    a first statement that records the call (which tests reach which blanked function, for
  `check`) mutate        replace a snippet inside one function (a wrong answer, for `check`)
  fingerprints  the non-trivial statements of a body, normalized by ast.unparse (the leak scan of `check`)
"""
import ast
import json
import os
import re

TODO = "TODO —"                    # how every stub's message starts; tests/conftest.py's hook looks for it
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)


class SourceError(ValueError):
    pass


def find_def(tree, qualname):
    """The FunctionDef for "f" or "Class.method" (nested classes too) at module level, or None."""
    body, node = tree.body, None
    for part in qualname.split("."):
        node = next((n for n in body if isinstance(n, (*_DEFS, ast.ClassDef)) and n.name == part), None)
        if node is None:
            return None
        body = node.body
    return node if isinstance(node, _DEFS) else None


def _docstring(node):
    first = node.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return first
    return None


def body_span(lines, node):
    """(first, last, indent) of the lines a blank replaces, 1-based inclusive: everything after the docstring
    (or the signature), comments inside the body included, up to the last statement and the comments indented
    under it."""
    doc = _docstring(node)
    stmts = node.body[1:] if doc else node.body
    if not stmts:
        raise SourceError(f"{node.name}: nothing to blank (the body is only a docstring)")
    if stmts[0].lineno == node.lineno:
        raise SourceError(f"{node.name}: a one-line def cannot be blanked; put its body on its own line")
    indent = " " * (doc or stmts[0]).col_offset
    first_stmt = min([stmts[0].lineno] + [d.lineno for d in getattr(stmts[0], "decorator_list", [])])
    if doc:
        first = doc.end_lineno + 1
    # the comments between the signature and the first statement
    else:
        first = first_stmt
        while first - 1 > node.lineno and lines[first - 2].strip().startswith("#"):
            first -= 1
    last = stmts[-1].end_lineno
    nxt = last                                       # trailing comments indented like the body belong to it
    while nxt < len(lines) and (not lines[nxt].strip() or
                                (lines[nxt].lstrip().startswith("#") and lines[nxt].startswith(indent))):
        nxt += 1
        if lines[nxt - 1].strip():
            last = nxt
    return first, last, indent


def _parse(src, where):
    try:
        return ast.parse(src)
    except SyntaxError as e:
        raise SourceError(f"{where}: does not parse ({e})") from None


def _locate(src, qualname, where):
    tree = _parse(src, where)
    node = find_def(tree, qualname)
    if node is None:
        raise SourceError(f"{where}: no function or method '{qualname}' (renamed? update "
                          "course/assignments.py)")
    return node


def stub_message(cite, hint, name):
    return f"{TODO} {cite}: {hint} [{name}]"


def blank(src, qualname, message, where="?"):
    """`src` with the body of `qualname` replaced by one `raise NotImplementedError(message)`."""
    lines = src.splitlines(keepends=True)
    first, last, indent = body_span(lines, _locate(src, qualname, where))
    # "..." like the issue
    stub = f"{indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})\n"
    return "".join(lines[:first - 1] + [stub] + lines[last:])


def body_text(src, qualname, where="?"):
    """The exact lines blank() removes (what restore() puts back)."""
    lines = src.splitlines(keepends=True)
    first, last, _ = body_span(lines, _locate(src, qualname, where))
    return "".join(lines[first - 1:last])


def restore(src, qualname, reference_src, where="?"):
    """`src` (a handout file) with the body of `qualname` taken from `reference_src` (the project's file)."""
    lines = src.splitlines(keepends=True)
    first, last, _ = body_span(lines, _locate(src, qualname, where))
    return "".join(lines[:first - 1]) + body_text(reference_src, qualname, where) + "".join(lines[last:])


_HIT_HELPER = '''
# course/ check: which test reaches which blanked function, and what it returns (instrumented copy only)
def _course_hit(name, _seen=set()):
    import os
    path, test = os.environ.get("MIMLAB_COURSE_TRACE"), os.environ.get("MIMLAB_COURSE_TEST", "")
    if path and (test, name) not in _seen:
        _seen.add((test, name))
        with open(path, "a") as f:
            f.write(f"{test}\\t{name}\\n")


def _course_watch(name):
    import functools
    import sys

    def deco(fn):
        @functools.wraps(fn)
        def _course_watch_wrapper(*args, **kwargs):
            answers = sys.modules.get("course.answers")
            if answers is None:
                return fn(*args, **kwargs)
            return answers.watch(name, fn, args, kwargs)
        return _course_watch_wrapper
    return deco

'''


def instrument(src, qualnames, module, where="?"):
    """`src` with `_course_hit("module.qualname")` as the first statement of each listed function (which tests
    reach it) and `@_course_watch("module.qualname")` as its outermost decorator (what it returns: check (h))."""
    tree = _parse(src, where)
    lines = src.splitlines(keepends=True)
    inserts = []
    for q in qualnames:
        node = _locate(src, q, where)
        doc = _docstring(node)
        stmts = node.body[1:] if doc else node.body
        at = min([stmts[0].lineno] + [d.lineno for d in getattr(stmts[0], "decorator_list", [])])
        indent = " " * stmts[0].col_offset
        inserts.append((at, f'{indent}_course_hit("{module}.{q}")\n'))
        # outermost decorator: its answers for check (h) (course/answers.py)
        top_def = min([node.lineno] + [d.lineno for d in node.decorator_list])
        inserts.append((top_def, f'{" " * node.col_offset}@_course_watch("{module}.{q}")\n'))
    # after the module docstring and any `from __future__` import
    top = 0
    for stmt in tree.body:
        is_doc = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt is tree.body[0]
        if is_doc or (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
            top = stmt.end_lineno
        else:
            break
    inserts.append((top + 1, _HIT_HELPER))
    for at, text in sorted(inserts, key=lambda t: -t[0]):
        lines.insert(at - 1, text)
    return "".join(lines)


def mutate(src, qualname, replacements, where="?"):
    """`src` with each (old, new) replaced inside the def of `qualname`; each `old` must occur there exactly
    once."""
    node = _locate(src, qualname, where)
    lines = src.splitlines(keepends=True)
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
    head, seg = "".join(lines[:start - 1]), "".join(lines[start - 1:node.end_lineno])
    tail = "".join(lines[node.end_lineno:])
    for old, new in replacements:
        n = seg.count(old)
        if n != 1:
            raise SourceError(f"{where}: {qualname} contains {old!r} {n} times, not once (update "
                              "course/mutations.py)")
        seg = seg.replace(old, new)
    out = head + seg + tail
    _parse(out, f"{where} after the mutation")
    return out


# ----------------------------------------------------------------------------- leak scan

# statements shorter than this (`return x`, `B, N, D = x.shape`) are not evidence of a leak
TRIVIAL_LEN = 24


def _simple_statements(nodes):
    for node in nodes:
        for sub in ast.walk(node):
            # Assign, Return, Expr, AugAssign, ...
            if isinstance(sub, ast.stmt) and not hasattr(sub, "body"):
                yield sub


def _norm(stmt):
    return re.sub(r"\s+", " ", ast.unparse(stmt)).strip()


def fingerprints(src, qualname, where="?"):
    """Normalized text of the non-trivial simple statements of a body (not the docstring)."""
    node = _locate(src, qualname, where)
    doc = _docstring(node)
    out = set()
    for stmt in _simple_statements(node.body[1:] if doc else node.body):
        text = _norm(stmt)
        if len(text) >= TRIVIAL_LEN and not text.startswith("raise NotImplementedError"):
            out.add(text)
    return out


def find_leaks(root, prints):
    """[(relative path, line, statement)] for every fingerprint found in a file under `root`: .py files
    compare statements (formatting-proof), other text files compare whitespace-collapsed text."""
    hits = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__")]
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, root)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue                                    # binary (PNG, ...)
            if fn.endswith(".py"):
                try:
                    tree = ast.parse(text)
                except SyntaxError:
                    tree = None
                if tree is not None:
                    for stmt in _simple_statements(tree.body):
                        t = _norm(stmt)
                        if t in prints:
                            hits.append((rel, stmt.lineno, t))
                    continue
            flat = re.sub(r"\s+", " ", text)
            hits.extend((rel, 0, p) for p in prints if p in flat)
    return hits
