"""engine.py: argument resolution, AdamW groups, the per-step schedule, atomic checkpoints, RNG round trip,
and the non-finite-loss stop. (Exact resume end to end is tested through the real CLIs in test_mae.py.)"""
import json
import math
import os
import random

import numpy as np
import pytest
import torch

import engine
from vit import create_model

PRESETS = {"tiny": dict(blr=1e-3, lr_batch=256, batch_size=32, epochs=7), "other": dict(blr=2e-3)}


def _parser():
    return engine.common_parser("test")


def test_preset_values_are_defaults_and_cli_overrides_win(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    a = engine.parse_args(_parser(), PRESETS, ["--model", "tiny"])
    assert (a.batch_size, a.epochs, a.blr) == (32, 7, 1e-3)
    assert a.lr == pytest.approx(1e-3 * 32 / 256)                # MAE App. A.1: lr = blr x batch / 256
    b = engine.parse_args(_parser(), PRESETS, ["--model", "tiny", "--epochs", "3", "--accum_iter", "4"])
    assert b.epochs == 3 and b.eff_batch_size == 128 and b.lr == pytest.approx(1e-3 * 128 / 256)
    c = engine.parse_args(_parser(), PRESETS, ["--model", "tiny", "--lr", "0.5"])
    assert c.lr == 0.5                                           # absolute lr wins over blr scaling


def test_effective_batch_counts_torchrun_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    a = engine.parse_args(_parser(), PRESETS, ["--model", "tiny", "--accum_iter", "2"])
    assert a.eff_batch_size == 32 * 2 * 8 and a.lr == pytest.approx(1e-3 * 512 / 256)


def test_unknown_model_lists_choices_and_print_args_is_json(capsys):
    with pytest.raises(SystemExit):
        engine.parse_args(_parser(), PRESETS, ["--model", "nope"])
    assert "choose one of: tiny, other" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        engine.parse_args(_parser(), PRESETS, ["--model", "other", "--print_args"])
    assert e.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["blr"] == 2e-3 and out["model"] == "other" and "lr" in out


def test_lr_schedule_is_linear_warmup_then_half_cycle_cosine():
    lr, min_lr, total, warm = 1.0, 0.1, 100, 10
    assert engine.lr_at(0, total, warm, lr, min_lr) == 0.0                        # warmup starts at exactly 0
    assert engine.lr_at(5, total, warm, lr, min_lr) == pytest.approx(0.5)
    assert engine.lr_at(10, total, warm, lr, min_lr) == pytest.approx(1.0)
    for s in [10, 33, 55, 99]:
        t = (s - warm) / (total - warm)
        assert engine.lr_at(s, total, warm, lr, min_lr) == pytest.approx(min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t)))
    assert engine.lr_at(55, total, warm, lr, min_lr) == pytest.approx(0.55)         # half-way: the mean


def test_param_groups_no_decay_for_1d_bias_pos_cls_mask_and_frozen_skipped():
    m = create_model("vit_test", mask_token=True, pos_embed="sincos")
    groups = engine.param_groups(m, 0.05)
    by_name = {n: g for g in groups for n in g["param_names"]}
    for n in ["cls_token", "mask_token", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias", "head.bias"]:
        assert by_name[n]["weight_decay"] == 0.0, n
    for n in ["blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "head.weight"]:
        assert by_name[n]["weight_decay"] == 0.05, n
    assert "pos_embed" not in by_name                             # fixed sin-cos: frozen, not optimized
    assert all(g["lr_scale"] == 1.0 for g in groups)
    scaled = engine.param_groups(m, 0.05, lr_scale_of=lambda n: (1, 0.5) if n.startswith("blocks") else (0, 1.0))
    opt = torch.optim.AdamW(scaled, lr=1.0)
    engine.set_lr(opt, 2e-3)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(2e-3 * (0.5 if g["name"].startswith("layer_1") else 1.0))


def test_atomic_save_leaves_no_temp_and_loads_weights_only(tmp_path):
    path = str(tmp_path / "x.pt")
    engine.atomic_save({"a": torch.ones(2), "args": engine.plain({"betas": (0.9, 0.95), "p": None})}, path)
    assert os.listdir(tmp_path) == ["x.pt"]
    obj = torch.load(path, weights_only=True)
    assert obj["args"]["betas"] == [0.9, 0.95]


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    engine.seed_everything(3)
    state = engine.rng_state()
    engine.atomic_save({"rng": state}, str(tmp_path / "r.pt"))
    expect = (torch.rand(3), np.random.rand(3), random.random())
    engine.seed_everything(99)
    engine.set_rng_state(torch.load(str(tmp_path / "r.pt"), weights_only=True)["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1]) and expect[2] == got[2]


def _ctx():
    return engine.Context(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), precision="fp32")


def _args(tmp_path, **kw):
    a = engine.parse_args(_parser(), {"t": dict(batch_size=4, epochs=2, warmup_epochs=1, log_every=1)},
                          ["--model", "t", "--output_dir", str(tmp_path)])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_non_finite_loss_stops_without_update_or_save(tmp_path):
    args = _args(tmp_path)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    engine.save_checkpoint(args, _ctx(), 0, model, opt, step=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        out = m(batch[0]).mean()
        return (out if len(calls) < 3 else out * float("nan")), {}
    with pytest.raises(SystemExit, match="loss is nan.*last good one"):
        engine.train_one_epoch(model, loss_fn, loader, opt, 1, args, _ctx(), engine.MetricsLog(str(tmp_path), _ctx()))
    assert len(calls) == 3 and not torch.equal(model.weight, before["weight"])        # two good steps happened
    ckpt = torch.load(str(tmp_path / "checkpoint-0000.pt"), weights_only=True)
    assert torch.equal(ckpt["model"]["weight"], before["weight"])                     # the saved one is untouched
    assert engine.list_checkpoints(str(tmp_path)) == [str(tmp_path / "checkpoint-0000.pt")]


def test_accumulation_equals_one_big_batch(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    results = []
    for bs, accum in [(8, 1), (4, 2)]:
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        args = _args(tmp_path, accum_iter=accum, batch_size=bs, warmup_epochs=0, epochs=1, min_lr=0.1, lr=0.1)
        loader = torch.utils.data.DataLoader(data, batch_size=bs)
        engine.train_one_epoch(model, lambda m, b: (((m(b[0]) - b[1]) ** 2).mean(), {}), loader, opt, 0, args,
                               _ctx(), engine.MetricsLog(str(tmp_path), _ctx()))
        results.append(model.weight.detach().clone())
    torch.testing.assert_close(results[0], results[1])


def test_checkpoints_are_pruned_and_resume_auto_picks_latest(tmp_path):
    args = _args(tmp_path, keep_ckpts=2, resume="auto")
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    for e in range(4):
        with torch.no_grad():
            model.weight.fill_(e)
        engine.save_checkpoint(args, _ctx(), e, model, opt, step=e * 10)
    assert [os.path.basename(p) for p in engine.list_checkpoints(str(tmp_path))] == ["checkpoint-0002.pt", "checkpoint-0003.pt"]
    fresh = torch.nn.Linear(2, 2)
    start, _ = engine.resume(args, fresh, torch.optim.AdamW(fresh.parameters()))
    assert start == 4 and (fresh.weight == 3).all()
    with pytest.raises(SystemExit, match="does not fit"):
        bad = torch.nn.Linear(3, 2)
        engine.resume(args, bad, torch.optim.AdamW(bad.parameters()))
    with pytest.raises(SystemExit, match="not found: .*missing.pt"):
        engine.resume(_args(tmp_path, resume=str(tmp_path / "missing.pt")), fresh, torch.optim.AdamW(fresh.parameters()))
