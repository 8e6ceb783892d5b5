"""The commands `list`, `make` and `restore` of course/make.py (the handouts; built by course/handout.py)."""
import os

from course.assignments import ASSIGNMENTS
from course.handout import make_handout, restore_bodies, stubs_of
from course.kit import ROOT, blanks_of, entries_of, get


def cmd_list():
    print(f"mimlab course: {len(ASSIGNMENTS)} assignments in reading order (each handout keeps the earlier "
          "ones' code whole and stubs the later ones')\n")
    for i, a in enumerate(ASSIGNMENTS, 1):
        n_fn = len(blanks_of(a))
        pts = sum(p for _, _, p in entries_of(a))
        print(f"{i}. {a['name']:12s} {a['title']}")
        print(f"   time: {a['time']}; {len(a['tasks'])} tasks, {n_fn} functions to write, {pts} points")
        print("   read: " + "; ".join(f"{paper} {sec}" for paper, sec in a["reading"]))
        print(f"   lab:  {a['lab']['command']}  ({a['lab']['time']})\n")
    print("make a handout: python course/make.py make NAME --out DIR")
    return 0


def cmd_make(name, out, force=False, root=ROOT):
    path = make_handout(name, out, root, force=force)
    a = get(name)
    n_own, n_all = len(blanks_of(a)), len(stubs_of(a))
    print(f"wrote {path}: {n_own} functions to write" + (f" (+ {n_all - n_own} of later assignments stubbed)"
                                                          if n_all > n_own else "")
          + f"; see {os.path.join(path, 'ASSIGNMENT.md')}\ngrade it: python course/make.py grade {out}")
    return 0


def cmd_restore(handout, root=ROOT):
    name = restore_bodies(os.path.abspath(handout), root)
    print(f"restored the reference bodies of '{name}' ({len(blanks_of(get(name)))} functions) in {handout}")
    return 0
