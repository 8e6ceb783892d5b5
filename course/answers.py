"""The answer detector of `check` step (h): does any code a handout ships compute what a stubbed function
returns?

It runs inside the instrumented reference suite (MIMLAB_COURSE_ANSWERS=path; course/pytest_plugin.py starts it
for each test):

- ANSWERS: every blanked function of every assignment is wrapped (source.instrument's `@_course_watch`); the
  tensors a call returns, or the weights it changes in place (an EMA step, a head's init), are its answers.
- SHIPPED computations: a TorchFunctionMode sees every torch operation of the test process and records the
  tensor it returns, with the nearest line of project code up the stack (a test, a concept file,
  experiments/, course/): what torch, timm or open_clip compute on that line's behalf is that line's
  computation, so comparing with a library's forward pass counts too. A blanked function's own result is also
  a shipped computation of the line that called it, for the handouts where it is not a stub.
- At the end of each test, a shipped computation whose tensor equals an answer of function F is a candidate
  leak, unless it derives from F's output (taint: an operation with an input computed from F's output carries
  F), F gave back one of its inputs (or what an earlier function it is fed from was given, as
  unpatchify(patchify(x)) = x), or the answer is trivial (empty, constant, 0 / 1 / -1). Values from a file
  (torch.load) or a literal table (torch.tensor([...])) are stored, not computed: a fixture is allowed; an
  attribute read and new memory (torch.empty) compute nothing.

Each candidate is one JSON line: the test, the function, where (file:line and the operation), which blanked
functions were running then (`inside`: in a handout that stubs one of them, that code does not run) and the
taint. `check` (h) decides per handout: a leak is a candidate whose function is a stub there, whose file ships
there, and that ran inside none of its stubs.

What it cannot see (course/README.md says so): computations in plain Python (lists, math.sin), code no test
runs, code run in subprocesses. Step (d)'s statement fingerprints cover text; the rule for instructors the
rest.
"""
import json
import math
import os
import sys
import weakref

import torch
from torch.overrides import TorchFunctionMode

_HERE = os.path.abspath(__file__)
_TORCH = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
# where a library's computation counts as the project's: a test (or a lab, or the kit) that asks timm or
# open_clip for the answer holds it; a concept file that runs a library (an export check) does not
_BY_LIBRARY = ("tests" + os.sep, "experiments" + os.sep, "course" + os.sep)
_STORED_FACTORIES = {"tensor", "as_tensor", "from_numpy"}    # a literal table or an array: a stored value
# operations that only move values: applied to a blanked function's output they compute nothing new
_MOVES = {"__getitem__", "__get__", "view", "reshape", "expand", "expand_as", "clone", "detach", "to",
          "float", "double", "contiguous", "permute", "transpose", "squeeze", "unsqueeze", "flatten",
          "cpu", "bool", "long", "int"}
# operations that compute no value: an attribute read (a weight's .data, .grad) and new memory (torch.empty
# holds whatever a freed tensor left there, a freed answer too)
_NOT_COMPUTED = {"__get__", "empty", "empty_like", "new_empty", "empty_strided"}
MAX_ANSWERS = 64            # per function and test: enough to see a test's own calls, bounded in training loops
MAX_SHIPPED = 20000         # per test
MAX_PER_LINE = 8            # per line of code (and line inside a library) and test: loops repeat lines
MAX_NUMEL = 4_000_000


def _tensors(obj, depth=0):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif depth < 3 and isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x, depth + 1)


_IDX = {}


def fingerprint(t):
    """(shape, kind, numbers) of a tensor, cheap and tolerant: 8 values at fixed positions, the sum and the sum
    of absolute values in float64 (floats); an exact weighted sum (integers, bools). None if not comparable."""
    if t.is_meta or t.numel() == 0 or t.numel() > MAX_NUMEL or t.is_complex() or t.device.type != "cpu":
        return None
    with torch.no_grad():
        flat = t.detach().reshape(-1)
        n = flat.numel()
        idx = _IDX.get(n)
        if idx is None:
            idx = _IDX[n] = torch.tensor(sorted({(k * (n - 1)) // 7 for k in range(8)}))
        if flat.is_floating_point():
            nums = torch.cat([flat[idx].double(), flat.sum(dtype=torch.float64).view(1),
                              flat.abs().sum(dtype=torch.float64).view(1)]).tolist()
            if not all(map(math.isfinite, nums)):
                return None
            kind = "float"
        else:
            f = flat.long()
            w = _weights(n)
            nums = f[idx].tolist() + [int((f * w).sum()), int(f.sum())]
            kind = "int"
    return tuple(t.shape), kind, nums


_W = {}


def _weights(n):
    if n not in _W:
        _W[n] = (torch.arange(n) * 2654435761 + 97) % 1000003
    return _W[n]


def same(a, b):
    """Equal fingerprints: the same shape and kind; integers exactly, floats to a relative 1e-4 of the
    tensor's own scale (its mean |value|: tiny tensors are not alike just because both are tiny)."""
    if a is None or b is None or a[0] != b[0] or a[1] != b[1]:
        return False
    if a[1] == "int":
        return a[2] == b[2]
    n = 1
    for s in a[0]:
        n *= s
    scale = max(abs(a[2][-1]), abs(b[2][-1])) / max(n, 1)          # mean |value|
    return all(abs(x - y) <= 1e-4 * (abs(y) + scale) + 1e-12 for x, y in zip(a[2], b[2]))


def trivial(fp):
    """Nothing to leak: a constant tensor (all zeros, all True, ...) or a scalar 0, 1 or -1."""
    shape, kind, nums = fp
    vals = nums[:-2]
    if len(set(vals)) > 1:
        return False
    n = 1
    for s in shape:
        n *= s
    v = vals[0]
    if n == 1:
        return v in (0, 1, -1)
    if kind == "int":
        return nums[-1] == v * n                     # constant: the sum says so (weights make it exact enough)
    return abs(nums[-2] - v * n) <= 1e-6 * max(1.0, abs(v) * n) and abs(nums[-1] - abs(v) * n) <= 1e-6 * max(
        1.0, abs(v) * n)


class Recorder(TorchFunctionMode):
    """One test's answers and shipped computations (see the module docstring)."""

    def __init__(self, root, out):
        super().__init__()
        self.root = os.path.abspath(root) + os.sep
        self.out = out
        self.stack = []                              # names of the blanked functions running now
        self.busy = False
        self.test = None
        self.marks = {}                              # id(tensor) -> (weakref, taint frozenset, stored bool)
        self.loaded = {}                             # id(tensor) -> weakref: loaded from a file, at any time
        # storage -> (tensor, taint) of small tainted tensors: an nn.Parameter made from an answer shares its
        # storage but is a new tensor that no operation produced (the tensor is kept: its storage stays unique)
        self.storages = {}
        self.answers, self.shipped = [], []
        self.n_answers, self.per_line, self.call_inputs = {}, {}, {}

    # ------------------------------------------------------------------ provenance of tensors
    def _mark(self, t, taint, stored):
        if not taint and not stored:
            return
        key = id(t)
        old = self.marks.get(key)
        if old is not None and old[0]() is t:
            taint, stored = old[1] | taint, old[2] or stored
        try:
            ref = weakref.ref(t, lambda _, k=key, m=self.marks: m.pop(k, None))
        except TypeError:
            return
        self.marks[key] = (ref, frozenset(taint), stored)
        if taint and not t.is_meta and t.numel() <= 65536 and len(self.storages) < 4000:
            ptr = t.untyped_storage().data_ptr()
            old = self.storages.get(ptr)
            self.storages[ptr] = (t, frozenset(taint) | (old[1] if old else frozenset()))

    def _of(self, t):
        m = self.marks.get(id(t))
        if m is None and id(t) in self.loaded and self.loaded[id(t)]() is t:
            return frozenset(), True
        if m is None or m[0]() is not t:
            if self.storages and not t.is_meta:
                s = self.storages.get(t.untyped_storage().data_ptr())
                if s is not None:
                    return s[1], False
            return frozenset(), False
        return m[1], m[2]

    def mark_stored(self, obj):
        """Tensors read from a file (a module's fixtures at import time too): stored, for every test."""
        for t in _tensors(obj):
            try:
                self.loaded[id(t)] = weakref.ref(t, lambda _, k=id(t), m=self.loaded: m.pop(k, None))
            except TypeError:
                pass

    # ------------------------------------------------------------------ where an operation comes from
    def _caller(self, depth=2):
        """(file:line of the nearest project code up the stack, the innermost code outside torch that asked for
        the operation): what torch, timm or open_clip compute on a test's (or a lab's) behalf is its
        computation. (None, None) if no project code is on the stack, or a concept file asked a library."""
        f, inner = sys._getframe(depth), None
        while f is not None:
            path = f.f_code.co_filename
            if inner is None and not path.startswith(_TORCH):
                inner = f"{path}:{f.f_lineno}"
            if (path.startswith(self.root) and path != _HERE and os.sep + "site-packages" + os.sep not in path
                    and f.f_code.co_name != "_course_watch_wrapper"):
                where = os.path.relpath(path, self.root)
                if os.sep + "site-packages" + os.sep in inner and not where.startswith(_BY_LIBRARY):
                    return None, None       # a concept file using a library (weights.py checking an export)
                return f"{where}:{f.f_lineno}", inner
            f = f.f_back
        return None, None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.busy or self.test is None:
            return out
        self.busy = True
        try:
            ins = [t for t in _tensors((args, kwargs))]
            taint, stored_all = frozenset(), bool(ins)
            for t in ins:
                tt, st = self._of(t)
                taint |= tt
                stored_all = stored_all and st
            name = getattr(func, "__name__", "")
            outs = list(_tensors(out))
            if name in ("copy_", "set_") and len(ins) >= 2:          # the result is the source's value
                taint, stored_all = self._of(ins[1])
                outs = ins[:1]
            elif name.endswith("_") or name == "__setitem__":        # in place: the input is the output
                outs += ins[:1]
            stored = stored_all or (not ins and name in _STORED_FACTORIES)
            for t in outs:
                self._mark(t, taint, stored)
            moved = taint and name in _MOVES          # another function's output, only moved around
            if (ins and not stored and not moved and outs and name not in _NOT_COMPUTED
                    and len(self.shipped) < MAX_SHIPPED):
                where, inner = self._caller()
                key = (where, inner)                # a library's forward pass: one key per line of it
                if where is not None and self.per_line.get(key, 0) < MAX_PER_LINE:
                    self.per_line[key] = self.per_line.get(key, 0) + 1
                    for t in outs[:2]:
                        fp = fingerprint(t)
                        if fp is not None:
                            self.shipped.append((fp, taint, frozenset(self.stack), f"{where} ({name})"))
        finally:
            self.busy = False
        return out

    # ------------------------------------------------------------------ the blanked functions
    def call(self, name, fn, args, kwargs):
        """Run blanked function `name`; its tensor outputs are its answers (and, for the handouts that ship it
        whole, a shipped computation of the code that called it)."""
        if self.test is None or self.busy:
            return fn(*args, **kwargs)
        self.busy = True
        try:
            where, _ = self._caller(depth=3)
            # record this call (its answers; its value as the caller's computation) or only taint its outputs
            watch = self.n_answers.get(name, 0) < MAX_ANSWERS
            site = where is not None and self.per_line.get(where, 0) < MAX_PER_LINE
            if site:
                self.per_line[where] = self.per_line.get(where, 0) + 1
            ins = list(_tensors((args, kwargs)))
            in_fps = [fingerprint(t) for t in ins] if watch or site else []
            # an answer that gives back what an earlier function g (whose output this one is fed) was given,
            # as unpatchify(patchify(x)) = x, reconstructs its input: nothing computed, nothing to leak
            undone = [fp for g in frozenset().union(*(self._of(t)[0] for t in ins))
                      for fp in self.call_inputs.get(g, ())]
            if watch and len(self.call_inputs.setdefault(name, [])) < MAX_ANSWERS:
                self.call_inputs[name] += [fp for fp in in_fps if fp is not None]
            # a function that changes a model in place (an EMA step, a head's init) answers with those weights
            mods = [m for a in args for m in (a, getattr(a, "module", None)) if isinstance(m, torch.nn.Module)]
            before = {id(p): fingerprint(p) for m in mods for p in list(m.parameters())[:256]} if watch else {}
        finally:
            self.busy = False
        self.stack.append(name)
        try:
            out = fn(*args, **kwargs)
        finally:
            self.stack.pop()
        self.busy = True
        try:
            inside = frozenset(self.stack)
            given = {}                                       # shape -> fingerprints of the weights given
            for b in before.values():
                if b is not None:
                    given.setdefault(b[0], []).append(b)
            for m in mods if watch else ():
                for p in list(m.parameters())[:256]:
                    fp = fingerprint(p)
                    if id(p) in before and fp is not None and not same(fp, before[id(p)]) and not trivial(fp):
                        self._mark(p, frozenset({name}), False)
                        if not any(same(fp, b) for b in given.get(fp[0], ())):   # not a copy of one given
                            self.answers.append((name, fp))
            for t in list(_tensors(out))[:4]:
                if isinstance(t, torch.nn.Parameter):        # a model's own weights handed back (param groups)
                    continue
                taint, _ = self._of(t)
                self._mark(t, frozenset({name}), False)
                if not (watch or site):
                    continue
                fp = fingerprint(t)
                if fp is None or trivial(fp) or any(same(fp, i) for i in in_fps + undone):
                    continue
                if watch:
                    self.n_answers[name] = self.n_answers.get(name, 0) + 1
                    self.answers.append((name, fp))
                if site and len(self.shipped) < MAX_SHIPPED:
                    # computed by `name`: shipped wherever `name` (and what runs around it) is not a stub
                    self.shipped.append((fp, taint, inside | {name}, f"{where} (calls {name})"))
        finally:
            self.busy = False
        return out

    # ------------------------------------------------------------------ per test
    def start(self, test):
        self.test, self.stack = test, []
        self.answers, self.shipped, self.n_answers, self.per_line, self.call_inputs = [], [], {}, {}, {}
        self.marks.clear()
        self.storages.clear()
        self.__enter__()

    def finish(self):
        if self.test is None:
            return
        self.__exit__(None, None, None)
        test, self.test = self.test, None
        by_shape = {}
        for rec in self.shipped:
            by_shape.setdefault((rec[0][0], rec[0][1]), []).append(rec)
        seen, lines = set(), []
        for name, fp in self.answers:
            for sfp, taint, inside, where in by_shape.get((fp[0], fp[1]), ()):
                if name in taint or name in inside or not same(sfp, fp):
                    continue
                key = (name, where, inside)
                if key not in seen:
                    seen.add(key)
                    lines.append(dict(test=test, fn=name, where=where, inside=sorted(inside),
                                      taint=sorted(taint)))
        self.answers, self.shipped = [], []
        self.marks.clear()
        self.storages.clear()
        if lines:
            with open(self.out, "a") as f:
                for line in lines:
                    f.write(json.dumps(line) + "\n")


RECORDER = None


def start(root, out):
    """Make the recorder (once per pytest process, before the test modules are imported: their fixtures
    load then) and wrap torch.load so that loaded tensors count as stored."""
    global RECORDER
    if RECORDER is None:
        RECORDER = Recorder(root, out)
        load = torch.load

        def stored_load(*args, **kwargs):
            obj = load(*args, **kwargs)
            RECORDER.mark_stored(obj)
            return obj
        torch.load = stored_load
    return RECORDER


def watch(name, fn, args, kwargs):
    """Called by the instrumented copy's `_course_watch` wrapper around every blanked function."""
    if RECORDER is None or RECORDER.test is None:
        return fn(*args, **kwargs)
    return RECORDER.call(name, fn, args, kwargs)
