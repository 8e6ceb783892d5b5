"""A newcomer's first hour: what a wrong step prints (one line that says what to do, no traceback, no usage
dump, once under torchrun), a failed start that blocks nothing, the result line that names its number, and a
progress bar where drawing the built-in data takes minutes."""
import json
import os
import subprocess
import sys

import pytest

import data
import engine
import finetune
import mae
import synthetic
import weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- CLIP weights offline

def test_offline_pretrained_openai_is_one_line_without_traceback_and_writes_nothing(tmp_path):
    """The headline command's CLIP weights with the hub offline: one line naming both ways on, exit 1."""
    out = tmp_path / "run"
    cmd = [sys.executable, os.path.join(REPO, "finetune.py"), "--model", "clip_b16", "--img_size", "32",
           "--pretrained", "openai", "--data", "atoms", "--num_train", "16", "--num_val", "16",
           "--output_dir", str(out)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1, r.stderr       # one line: no warnings, no traceback
    assert err[0].startswith("--pretrained openai: could not get ViT-B-16-quickgelu weights via open_clip "
                             "(HF_HUB_OFFLINE=1 and not in the local cache)")
    assert err[0].endswith("--pretrained /path/to/ViT-B-16.pt, or with random init, --pretrained ''")
    assert r.stdout.strip().splitlines()[-1].startswith("[engine] 1 process(es)")   # and nothing else
    assert not out.exists()                                                 # nothing written: no --overwrite


def test_offline_teacher_pretrained_offers_random(capfd):
    """maskdistill.py's teacher: the same line (its flag, its random-init spelling), nothing else printed."""
    with pytest.raises(SystemExit) as e:
        weights.read_clip_weights("clip_b16", "openai", "--teacher_pretrained", random_init="random")
    msg = str(e.value)
    assert "\n" not in msg and "HF_HUB_OFFLINE=1 and not in the local cache" in msg
    assert msg.endswith("--teacher_pretrained /path/to/ViT-B-16.pt, or with random init, "
                        "--teacher_pretrained random")
    assert capfd.readouterr() == ("", "")                                   # the hub's logging: silenced
    with pytest.raises(SystemExit, match=r"no such tag; its tags: openai"):  # a typo: the tags there are
        weights.read_clip_weights("clip_b16", "opneai")


def test_under_torchrun_only_the_first_process_of_a_machine_prints(monkeypatch, capsys):
    slept = []
    monkeypatch.setattr(engine.time, "sleep", slept.append)
    assert str(engine.fail("one line")) == "one line"                       # LOCAL_RANK 0: Python prints it
    monkeypatch.setenv("LOCAL_RANK", "1")
    e = engine.fail("one line")
    assert e.code == 1 and slept == [2]                         # a plain status, after rank 0's line
    with pytest.raises(SystemExit) as e:
        finetune.get_args(["--model", "vit_test", "--bogus"])
    assert e.value.code == 2 and capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- a failed start blocks nothing

def test_bad_data_then_the_corrected_command_runs_without_overwrite(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["--model", "mae_vit_test", "--num_train", "16", "--num_val", "8", "--epochs", "1", "--save_init",
            "--output_dir", out]
    with pytest.raises(SystemExit, match="no such folder"):
        mae.main([*argv, "--data", str(tmp_path / "imagenet")])             # a typo in --data
    # nothing is written before the inputs are checked (the step-0 encoder of --save_init comes after them)
    assert not os.path.exists(out) and not engine.holds_run(out)
    mae.main([*argv, "--data", "shapes"])                                   # the corrected command, as is
    assert "checkpoint-0000.pt" in os.listdir(out)
    assert json.load(open(os.path.join(out, "args.json")))["data"] == "shapes"
    with pytest.raises(SystemExit):                                         # now it holds a run: refused
        mae.main([*argv, "--data", "shapes"])
    assert "holds an earlier run" in capsys.readouterr().err


def test_a_folder_holds_a_run_only_with_results_or_a_checkpoint(tmp_path):
    (tmp_path / "args.json").write_text("{}")                   # what a run killed before its first
    (tmp_path / "metrics.jsonl").write_text('{"step": 10}\n')   # checkpoint leaves: nothing to resume
    (tmp_path / "encoder_init.pt").write_bytes(b"")
    assert not engine.holds_run(str(tmp_path))
    for name in ["checkpoint-0003.pt", "encoder.pt", "summary.json", "eval.json", "recon_epoch000.png"]:
        d = tmp_path / name.split(".")[0]
        d.mkdir()
        (d / name).write_text("{}")
        assert engine.holds_run(str(d)), name


# ----------------------------------------------------------------------------- one-line messages

def test_init_of_a_text_file_says_it_is_not_a_checkpoint(tmp_path):
    with pytest.raises(SystemExit) as e:
        finetune.main(["--model", "vit_test", "--init", os.path.join(REPO, "README.md"), "--num_train", "16",
                       "--num_val", "16", "--output_dir", str(tmp_path / "run")])
    msg = str(e.value)
    assert "\n" not in msg and "README.md is not a checkpoint: not a file torch.save writes" in msg
    assert "pickles" not in msg and "re-save" not in msg and not (tmp_path / "run").exists()
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="empty.pt is empty"):
        engine.load_file(str(tmp_path / "empty.pt"), "--init")


@pytest.mark.parametrize("main,argv,expect", [
    (finetune.get_args, ["--model", "vit_test", "--bogus"], "finetune.py: error: unrecognized arguments"),
    (finetune.get_args, ["--epochs", "3"], "error: the following arguments are required: --model"),
    (finetune.get_args, ["--model", "vit_test", "--optimizer", "adam"], "--optimizer: invalid choice"),
    (mae.main, ["--visualize", "photo.jpg"], "mae.py --visualize: error: the following arguments are "
                                             "required: --init"),
    (data.main, ["--nope"], "error: unrecognized arguments: --nope"),
    (weights.main, ["export"], "weights.py export: error: the following arguments are required: CKPT")])
def test_argument_errors_are_one_line_and_point_to_help(capsys, monkeypatch, main, argv, expect):
    monkeypatch.setattr(sys, "argv", [main.__module__ + ".py"])    # argparse's prog: the script's name
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.splitlines()) == 1, err            # no usage lines first
    assert expect in err and err.rstrip().endswith("--help)")


def test_the_last_result_line_names_last_and_best_as_summary_json(tmp_path, capsys):
    finetune.main(["--model", "vit_test", "--num_train", "32", "--num_val", "16", "--output_dir",
                   str(tmp_path)])
    s = json.load(open(tmp_path / "summary.json"))
    line = capsys.readouterr().out.strip().splitlines()[-2]     # the [done] line comes last
    assert line == (f"[finetune] val top-1 (summary.json): last {s['last_acc1']:.2f} (epoch "
                    f"{s['last_epoch']}), best {s['best_acc1']:.2f} (epoch {s['best_acc1_epoch']}); EMA: "
                    f"last {s['last_acc1_ema']:.2f}, best {s['best_acc1_ema']:.2f} (epoch "
                    f"{s['best_acc1_ema_epoch']}; FT-CLIP's headline, checkpoint-best.pt)")


# ----------------------------------------------------------------------------- data

def test_a_long_draw_of_the_built_in_data_shows_a_bar_on_the_first_process(monkeypatch, capfd):
    data.build_dataset("atoms", "val", num_val=20)
    assert capfd.readouterr().err == ""                                     # seconds: no bar
    monkeypatch.setattr(data, "BAR_PIXELS", 0)                              # as if it took minutes
    data.build_dataset("atoms", "val", num_val=20)
    err = capfd.readouterr().err
    assert "[data] drawing atoms val: 20 images at 32 px" in err and "20/20" in err
    monkeypatch.setenv("RANK", "1")                             # torchrun's other processes: silent
    data.build_dataset("atoms", "val", num_val=20)
    assert capfd.readouterr().err == ""


def test_progress_counts_every_image_and_changes_none():
    for make in (synthetic.make_shapes, synthetic.make_atoms):
        seen = []
        images, labels = make(70, 48, 3, progress=seen.append)
        assert sum(seen) == 70                                              # every chunk reported
        again, labels2 = make(70, 48, 3)
        assert (images == again).all() and (labels == labels2).all()


def test_data_py_out_makes_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data.main(["--data", "shapes", "--num_train", "20", "--out", "runs/shapes.png"])
    assert (tmp_path / "runs" / "shapes.png").is_file()
