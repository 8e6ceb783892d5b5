"""The course kit: student handouts with graders, made from the concept files (the manifest:
course/assignments.py).

    python course/make.py list                         the assignments in reading order, with time estimates
    python course/make.py make mae --out handout/      a student copy of the project, mae's functions blanked
    python course/make.py grade handout/ [--json results.json] [--extra_tests DIR [--show_extra_tests]]
                                                       points per task (--json: Gradescope's results.json)
    python course/make.py check [NAME ...] [--labs quick|full|none]
                                                       for instructors and CI: the graders catch wrong answers
    python course/make.py restore handout/             paste this project's bodies back (it then grades full)

A handout is the project's files (no .git, no course/mutations.py, no kit tests) with each listed body
replaced by `raise NotImplementedError("TODO — <paper §>: <hint> [<function>]")` and the later assignments'
functions stubbed too, plus ASSIGNMENT.md and course/handout.json (which assignment it is). Inside a handout,
`python course/make.py grade .` is the student's own grader. The guide: course/README.md.

This file is the command line only: each command lives in course/cmd_<command>.py, which imports the shared
helpers (course/kit.py, handout.py, source.py) and no other command; nothing imports this file.
"""
import argparse
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `python course/make.py` puts course/, not the project, on the path
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from course.assignments import ASSIGNMENTS  # noqa: E402
from course.cmd_check import cmd_check  # noqa: E402
from course.cmd_grade import cmd_grade  # noqa: E402
from course.cmd_handout import cmd_list, cmd_make, cmd_restore  # noqa: E402


def parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
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
    g.add_argument("--show_extra_tests", action="store_true",
                   help="show the held-back tests to students at once (results.json visibility 'visible'; "
                        "default 'after_published': once the grades are published)")
    g.add_argument("--timeout", type=int, default=1800, help="seconds before the test run is stopped")
    c = sub.add_parser("check", help="instructors/CI: every assignment's graders pass the reference and "
                                     "catch wrong answers")
    c.add_argument("names", nargs="*", help="assignments to check (default: all)")
    c.add_argument("--jobs", type=int, default=0, help="parallel runs (default: min(2, CPU count))")
    c.add_argument("--keep", default=None, help="keep the handouts, copies and logs in this folder")
    c.add_argument("--labs", choices=["quick", "full", "none"], default="quick",
                   help="step (g): run each lab's quick command (default), the full lab command (about 30 "
                        "min on 2 cores: checks every number the lab text states), or none")
    r = sub.add_parser("restore", help="paste this project's reference bodies back into a handout")
    r.add_argument("handout")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if args.cmd == "list":
        return cmd_list()
    if args.cmd == "make":
        return cmd_make(args.name, args.out, force=args.force)
    if args.cmd == "grade":
        return cmd_grade(args.handout, args.json, args.extra_tests, timeout=args.timeout,
                         show_extra=args.show_extra_tests)
    if args.cmd == "restore":
        return cmd_restore(args.handout)
    return cmd_check(args.names, jobs=args.jobs, keep=args.keep, labs=args.labs)


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):       # `make.py list | head` ends quietly, as a Unix tool does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
