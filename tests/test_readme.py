"""Every command README.md and experiments/README.md show still runs, cheaply: a training command resolves its
arguments (`--print_args`, with torchrun's world size where it says torchrun); a tool that is fast runs for real
(output files moved to tmp_path); a slow one (a study, a download, your own photo) is run until it has parsed its
command line. The course's commands are tested in tests/test_course_kit.py."""
import os
import re
import shlex
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "experiments"))


class Parsed(Exception):
    """Raised where a slow command would start its real work: its command line was accepted."""


def commands(doc):
    """The `python ...` / `torchrun ...` lines of a README's bash blocks, comments dropped."""
    text = open(os.path.join(REPO, doc)).read()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in ("python", "torchrun") and words[1:2] != ["-m"] and not (
                    words[1:2] and words[1].startswith("course/")):          # the course kit's: test_course_kit
                yield words


def run(words, tmp_path, monkeypatch):
    import engine
    world = 1
    if words[0] == "torchrun":                     # torchrun [its flags] script.py [the script's flags]
        world = int(next(w.split("=")[1] for w in words if w.startswith("--nproc_per_node=")))
        words = words[next(i for i, w in enumerate(words) if w.endswith(".py")):]
    else:
        words = words[1:]
    script, argv = words[0], words[1:]
    if script.endswith("bench.py") and "--out" not in argv:
        argv += ["--out", "bench.md"]             # its default is experiments/bench.md
    for flag in ("--out", "--output_dir"):        # never write into the repo
        if flag in argv:
            argv[argv.index(flag) + 1] = str(tmp_path / os.path.basename(argv[argv.index(flag) + 1]))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    name = os.path.splitext(os.path.basename(script))[0]
    module = __import__(name)
    if name in ("mae", "maskdistill", "finetune") and "--visualize" not in argv:
        with pytest.raises(SystemExit) as e:
            module.main(argv + ["--print_args"])
        assert e.value.code in (0, None), (words, e.value)
        return
    def parsed(*a, **k):
        raise Parsed
    monkeypatch.setattr(engine, "load_file", parsed)          # mae.py --visualize, weights.py export
    if name == "laptop":
        monkeypatch.setattr(module, "run_jobs", parsed)
    try:
        module.main(argv)
    except Parsed:
        pass


@pytest.mark.parametrize("doc", ["README.md", "experiments/README.md"])
def test_every_readme_command_runs(doc, tmp_path, monkeypatch, capsys):
    cmds = list(commands(doc))
    assert len(cmds) >= (15 if doc == "README.md" else 2)
    for words in cmds:
        run(words, tmp_path, monkeypatch)
    out = capsys.readouterr().out
    if doc == "README.md":
        assert "clip_b16             img  224  params     86.19 M  GFLOPs (MACs)    17.56" in out   # FT-CLIP Table 11
