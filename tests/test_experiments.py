"""experiments/: the laptop study's whole pipeline on a toy size (so it cannot rot) and the benchmark script on tiny
models. No timed assertions: the numbers are whatever they are; the tests check that every study ran and reported."""
import os
import sys

import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments"))
import bench  # noqa: E402
import laptop  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_laptop_toy_runs_every_study_and_writes_table_and_plots(tmp_path):
    results = tmp_path / "results.md"
    rows = laptop.main(["--toy", "--out_dir", str(tmp_path / "runs"), "--results", str(results), "--num_workers", "0"])
    studies = [r["study"] for r in rows]
    # 6 pre-trainings (MAE 0.75, 4 ratios, MaskDistill), 2 study-1 runs, 4 ratio runs, student + teacher, 7 recipe rows
    assert studies.count("pre-train") == 6
    assert studies.count("1 few labels") == 2 and studies.count("2 mask ratio") == 4
    assert studies.count("3 teacher") == 2 and studies.count("4 recipe") == 7
    for r in rows:
        assert r["value"] == r["value"] and r["value"] is not None                 # a number, not NaN
        if "top-1" in r["metric"]:
            assert 0 <= r["value"] <= 100 and len(r["curve"]) == laptop.MODES["toy"]["ft_epochs"]
    ema_row = next(r for r in rows if r["metric"].endswith("(EMA), last epoch"))
    assert "EMA" in ema_row["setting"]
    text = results.read_text()
    assert "| study | setting | seed | metric | value | best epoch |" in text and "mask 0.9" in text and "(reused)" in text
    for png in ["toy_curves.png", "toy_bars.png"]:
        assert Image.open(tmp_path / png).size[0] > 100
    # each fine-tuning run wrote its summary; the MaskDistill student was distilled from study 1's MAE encoder
    assert (tmp_path / "runs" / "ft_student" / "summary.json").exists()
    assert (tmp_path / "runs" / "maskdistill" / "encoder.pt").exists()


def test_ema_decay_keeps_ft_clip_horizon_fraction():
    # FT-CLIP: 0.9998 over 50 epochs x 625 steps -> horizon 5000 steps = 16% of the run
    assert laptop.ema_decay_for(31250) == pytest.approx(0.9998, abs=1e-7)
    assert laptop.ema_decay_for(100) == pytest.approx(1 - 1 / 16)


def test_bench_tiny_smoke(tmp_path):
    out = tmp_path / "bench.md"
    report = bench.main(["--tiny", "--repeats", "1", "--batch", "2", "--mae_batch", "2", "--out", str(out)])
    assert out.read_text() == report
    assert "ours / timm" in report and "visible-only" in report and "vit_test" in report
    assert "GPU" in report                                      # section 4 says it measured nothing without CUDA
