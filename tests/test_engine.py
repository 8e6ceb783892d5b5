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
    # parsed as a continuation (--resume auto): these tests write checkpoints into one folder across calls,
    # which a fresh run's parse refuses; `resume` is then what the test gives ('' by default)
    a = engine.parse_args(_parser(), {"t": dict(batch_size=4, epochs=2, warmup_epochs=1, log_every=1)},
                          ["--model", "t", "--output_dir", str(tmp_path), "--resume", "auto"])
    a.resume = ""
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


# ----------------------------------------------------------------------------- fp16 loss scaling (issue 10 item 2)

def _fp16_ctx():
    return engine.Context(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), precision="fp16")


def test_make_scaler_only_for_fp16():
    scaler = engine.make_scaler(_fp16_ctx())
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled() and scaler.get_scale() == 2.0 ** 16
    for precision in ["bf16", "fp32"]:                                 # bf16 has fp32's exponent range: no scaling
        assert engine.make_scaler(engine.Context(0, 0, 1, torch.device("cpu"), precision)) is None


def _rows(tmp_path):
    return [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]


def test_fp16_overflow_step_is_skipped_scale_halves_and_the_run_goes_on(tmp_path):
    args = _args(tmp_path, batch_size=4, epochs=1, warmup_epochs=0, lr=0.1, min_lr=0.1, clip_grad=1.0)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    scaler, ctx = engine.make_scaler(_fp16_ctx()), _fp16_ctx()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3)), batch_size=4)
    before, calls = model.weight.detach().clone(), []

    def loss_fn(m, batch):                            # step 1: a finite loss whose gradient overflows (inf)
        calls.append(1)
        out = m(batch[0])
        if len(calls) == 1:
            out.register_hook(lambda g: torch.full_like(g, float("inf")))
        return out.float().pow(2).mean(), {}
    args.max_steps = 1
    engine.train_one_epoch(model, loss_fn, loader, opt, 0, args, ctx, engine.MetricsLog(str(tmp_path), ctx), scaler=scaler)
    assert torch.equal(model.weight, before) and not opt.state                       # skipped: no update, no Adam step
    assert scaler.get_scale() == 2.0 ** 15                                          # backoff 0.5
    row = _rows(tmp_path)[-1]
    assert row["skipped_steps"] == 1 and row["loss_scale"] == 2.0 ** 15 and "grad_norm" not in row   # inf not logged
    args.max_steps = 0
    engine.train_one_epoch(model, loss_fn, loader, opt, 0, args, ctx, engine.MetricsLog(str(tmp_path), ctx), scaler=scaler)
    assert not torch.equal(model.weight, before) and _rows(tmp_path)[-1]["skipped_steps"] == 0   # clean steps update


def test_fp16_clipping_sees_unscaled_gradients(tmp_path):
    """The grad norm that clipping measures (and logs) is the true one, not x 65536: it matches fp32's."""
    data = torch.utils.data.TensorDataset(torch.randn(8, 16), torch.randn(8, 4))
    out = {}
    for precision in ["fp32", "fp16"]:
        torch.manual_seed(0)
        model = torch.nn.Linear(16, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ctx = engine.Context(0, 0, 1, torch.device("cpu"), precision)
        args = _args(tmp_path / precision, batch_size=8, epochs=1, warmup_epochs=0, lr=0.1, min_lr=0.1, clip_grad=0.05)
        os.makedirs(args.output_dir)
        loss_fn = lambda m, b: (((m(b[0]).float() - b[1]) ** 2).mean(), {})      # noqa: E731
        engine.train_one_epoch(model, loss_fn, torch.utils.data.DataLoader(data, batch_size=8), opt, 0, args, ctx,
                               engine.MetricsLog(args.output_dir, ctx), scaler=engine.make_scaler(ctx))
        out[precision] = (_rows(tmp_path / precision)[-1]["grad_norm"], model.weight.detach().clone())
    assert out["fp32"][0] > 10 * 0.05                                              # clipping is active
    assert out["fp16"][0] == pytest.approx(out["fp32"][0], rel=1e-2)                # fp16 matmul rounding only
    torch.testing.assert_close(out["fp16"][1], out["fp32"][1], rtol=0, atol=1e-3)   # the same clipped update


def test_fp16_non_finite_loss_still_stops(tmp_path):
    """A skipped overflow step is not divergence, but a nan *loss* still ends the run before any update."""
    args = _args(tmp_path)
    model, ctx = torch.nn.Linear(3, 1), _fp16_ctx()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 3)), batch_size=4)
    with pytest.raises(SystemExit, match="loss is nan"):
        engine.train_one_epoch(model, lambda m, b: (m(b[0]).float().mean() * float("nan"), {}), loader,
                               torch.optim.AdamW(model.parameters()), 0, args, ctx, engine.MetricsLog(str(tmp_path), ctx),
                               scaler=engine.make_scaler(ctx))


def test_scaler_state_round_trips_through_checkpoint_and_resume(tmp_path):
    args = _args(tmp_path, resume="auto")
    model, ctx = torch.nn.Linear(2, 2), _fp16_ctx()
    opt = torch.optim.AdamW(model.parameters())
    scaler = engine.make_scaler(ctx)
    scaler.load_state_dict({**scaler.state_dict(), "scale": 1024.0, "_growth_tracker": 7})   # a mid-run state
    engine.save_checkpoint(args, ctx, 0, model, opt, step=3, scaler=scaler)
    assert torch.load(str(tmp_path / "checkpoint-0000.pt"), weights_only=True)["scaler"]["scale"] == 1024.0
    fresh = engine.make_scaler(ctx)
    engine.resume(args, model, opt, scaler=fresh)
    assert fresh.state_dict() == scaler.state_dict() and fresh.get_scale() == 1024.0


# ----------------------------------------------------------------------------- --help and parse-time checks (items 4, 16)

def _one_line_error(capsys, fn, *a):
    """Run fn(*a), expect argparse's error exit (code 2) and return its last stderr line (the message)."""
    with pytest.raises(SystemExit) as e:
        fn(*a)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_help_shows_the_presets_defaults(capsys):
    import finetune
    with pytest.raises(SystemExit) as e:
        finetune.get_args(["--model", "clip_b16", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())                   # argparse wraps lines
    # FT-CLIP Table 10 (B): lr 6e-4 at batch 2048 (8 GPUs x 256), 50 epochs
    assert "--blr BLR peak lr at a total batch of --lr_batch (default: 0.0006)" in text
    assert "--lr_batch LR_BATCH the batch of --blr (MAE 256, MaskDistill 2048) (default: 2048)" in text
    assert "--epochs EPOCHS training epochs (the cosine spans them) (default: 50)" in text
    assert "--batch_size BATCH_SIZE per process; x accum_iter x world = effective (default: 256)" in text
    with pytest.raises(SystemExit):                                    # without --model: the generic defaults
        engine.parse_args(_parser(), PRESETS, ["--help"])
    assert "(default: 0.001)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):                                    # -h does not hide an unknown preset
        engine.parse_args(_parser(), PRESETS, ["--model", "nope", "-h"])
    assert "unknown --model 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value,expect", [
    ("--batch_size", "0", "--batch_size 0 must be >= 1"), ("--epochs", "-1", "--epochs -1 must be >= 1"),
    ("--accum_iter", "0", "--accum_iter 0 must be >= 1"), ("--warmup_epochs", "-1", "--warmup_epochs -1.0 must be >= 0"),
    ("--num_train", "0", "--num_train 0 must be >= 1"), ("--keep_ckpts", "0", "--keep_ckpts 0 must be >= 1"),
    ("--clip_grad", "0", "--clip_grad 0.0 must be > 0"), ("--lr", "-0.1", "--lr -0.1 must be >= 0")])
def test_common_flags_out_of_range_end_in_one_line(capsys, flag, value, expect):
    assert expect in _one_line_error(capsys, engine.parse_args, _parser(), PRESETS, ["--model", "tiny", flag, value])


def test_script_checks_img_size_and_mask_ratio(capsys):
    import finetune
    import mae
    import maskdistill
    cases = [(mae.get_args, ["--model", "mae_vit_test", "--img_size", "33"], "--img_size 33 is not a multiple of the "
              "patch size 8; use e.g. 32 or 40"),
             (mae.get_args, ["--model", "mae_vit_test", "--mask_ratio", "1.5"], "--mask_ratio 1.5 must be in (0, 1)"),
             (mae.get_args, ["--model", "mae_vit_test", "--mask_ratio", "0"], "--mask_ratio 0.0 must be in (0, 1)"),
             (mae.get_args, ["--model", "mae_vit_test", "--mask_ratio", "0.99"], "keep at least one of the 16 patches"),
             (mae.get_args, ["--model", "mae_vit_base_patch16", "--img_size", "200"], "patch size 16; use e.g. 192 or 208"),
             (maskdistill.get_args, ["--model", "maskdistill_vit_test", "--mask_ratio", "1.5"], "must be in [0, 1)"),
             (maskdistill.get_args, ["--model", "maskdistill_vit_test", "--img_size", "30"], "multiple of the patch size 8"),
             (finetune.get_args, ["--model", "vit_test", "--img_size", "4"], "--img_size 4 is not a multiple of the "
              "patch size 8; use e.g. 8 or 16")]
    for fn, argv, expect in cases:
        assert expect in _one_line_error(capsys, fn, argv), argv
    assert mae.get_args(["--model", "mae_vit_test", "--mask_ratio", "0.5", "--img_size", "48"]).mask_ratio == 0.5
    kd = maskdistill.get_args(["--model", "maskdistill_vit_test", "--mask_ratio", "0"])
    assert kd.num_mask_patches == 0                                      # Table 5: knowledge distillation, no mask


# ----------------------------------------------------------------------------- resume problems (item 16)

def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_resume_unreadable_checkpoint_is_one_line_and_auto_falls_back(tmp_path, capsys):
    args = _args(tmp_path, keep_ckpts=2, resume="auto")
    model = torch.nn.Linear(2, 2)
    for e in range(2):
        with torch.no_grad():
            model.weight.fill_(e)
        engine.save_checkpoint(args, _ctx(), e, model, torch.optim.AdamW(model.parameters()), step=e)
    last = str(tmp_path / "checkpoint-0001.pt")
    _truncate(last)                                                    # e.g. a disk that filled up during a copy
    fresh = torch.nn.Linear(2, 2)
    with pytest.raises(SystemExit) as e:
        engine.resume(_args(tmp_path, resume=last), fresh, torch.optim.AdamW(fresh.parameters()))
    msg = str(e.value)
    assert "\n" not in msg and f"checkpoint {last} is unreadable, probably truncated" in msg and "--resume auto" in msg
    start, _ = engine.resume(args, fresh, torch.optim.AdamW(fresh.parameters()))
    assert start == 1 and (fresh.weight == 0).all()                    # the intact epoch-0 checkpoint
    assert f"WARNING: --resume auto: {last} is unreadable" in capsys.readouterr().out
    _truncate(str(tmp_path / "checkpoint-0000.pt"))
    with pytest.raises(SystemExit, match="none of the 2 checkpoint"):
        engine.resume(args, fresh, torch.optim.AdamW(fresh.parameters()))


def test_resume_checkpoint_of_another_model_names_the_keys_in_one_line(tmp_path):
    args = _args(tmp_path, resume=str(tmp_path / "checkpoint-0000.pt"))
    src = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    engine.save_checkpoint(args, _ctx(), 0, src, torch.optim.AdamW(src.parameters()), step=0)
    other = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with pytest.raises(SystemExit) as e:
        engine.resume(args, other, torch.optim.AdamW(other.parameters()))
    msg = str(e.value)
    assert "\n" not in msg and "does not fit --model t" in msg
    assert "1 shape mismatch(es): 0.weight (2, 2) in the file vs (2, 3) here" in msg
    assert "2 key(s) missing from the file: 2.weight, 2.bias" in msg
    same = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    with pytest.raises(SystemExit, match="optimizer state does not fit"):    # same weights, other param groups
        engine.resume(args, same, torch.optim.AdamW([{"params": same[0].parameters()}, {"params": same[1].parameters()}]))


def test_evaluate_reports_top_1_and_top_5_of_hand_made_logits():
    """Four images of 10 classes whose true class ranks 1st, 3rd, 5th and 7th among the logits: top-1 25%,
    top-5 75% (a top-5 reported as top-1 would read 75 / 75)."""
    rank_of_truth = [0, 2, 4, 6]
    logits = torch.arange(10.0).flip(0).repeat(4, 1)              # class k has logit 9 - k: rank k + 1
    target = torch.tensor(rank_of_truth)
    data = torch.utils.data.TensorDataset(logits, target)

    class Identity(torch.nn.Module):                              # the "model" hands the logits through
        def forward(self, x):
            return x
    acc1, acc5 = engine.evaluate(Identity(), torch.utils.data.DataLoader(data, batch_size=3), _ctx())
    assert (acc1, acc5) == (25.0, 75.0), f"expected top-1 25.0 and top-5 75.0, got {acc1}, {acc5}"
