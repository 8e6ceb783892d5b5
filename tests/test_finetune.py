"""finetune.py: the papers' recipes as presets (FT-CLIP Table 10, MAE FINETUNE.md / Table 10, MaskDistill App. C), layer-wise
lr decay equal to the reference codes' numbers, FT-CLIP's head and parameter count, the CLI end to end (CLIP weights,
EMA + best/last bookkeeping, linear probe, partial fine-tuning, --init from mae.py, exact resume, torchrun), clear errors."""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
import finetune
import weights
from finetune import build_model, get_args, layer_id, param_groups_lrd
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig, create_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# reference §2.3 (MAE util/lr_decay.py, ViT-B at 0.65) and §3.3 (FT-CLIP optim_factory.py, B/16 at 0.6), by layer id 0..13
MAE_B_065 = [.003697, .005688, .008751, .013463, .020712, .031864, .049022, .075419, .116029, .178506, .274625, .4225, .65, 1]
FTCLIP_B_06 = [.001306, .002177, .003628, .006047, .010078, .016796, .027994, .046656, .07776, .1296, .216, .36, .6, 1]


def _by_name(groups):
    return {n: g for g in groups for n in g["param_names"]}


def _resolved(capsys, monkeypatch, *argv, world=None):
    """--print_args as a dict, as if launched by torchrun with `world` processes."""
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", str(world))
    with pytest.raises(SystemExit) as e:
        get_args([*argv, "--print_args"])
    assert e.value.code == 0
    return json.loads(capsys.readouterr().out)


# ----------------------------------------------------------------------------- layer-wise lr decay

def test_llrd_vit_b_scales_are_decay_to_the_13_minus_layer_id_and_equal_mae_reference():
    with torch.device("meta"):
        model = create_model("vit_base_patch16", global_pool="avg")
    groups = param_groups_lrd(model, 0.05, 0.65)
    by_name = _by_name(groups)
    ids = {"cls_token": 0, "pos_embed": 0, "patch_embed.proj.weight": 0, "patch_embed.proj.bias": 0,
           "blocks.0.attn.qkv.weight": 1, "blocks.0.norm1.bias": 1, "blocks.5.mlp.fc1.weight": 6,
           "blocks.11.mlp.fc2.weight": 12, "fc_norm.weight": 13, "head.weight": 13, "head.bias": 13}
    for name, i in ids.items():
        assert layer_id(name, 12) == i, (
            f"FT-CLIP §2.1 LLRD: expected layer_id('{name}', 12) = {i}, got {layer_id(name, 12)}")
        assert abs(by_name[name]["lr_scale"] - MAE_B_065[i]) <= 5e-7, (             # the reference's 6 digits
            f"FT-CLIP §2.1 LLRD: {name} (layer {i}): expected MAE's lr_scale {MAE_B_065[i]} (0.65 ** (13 - "
            f"layer)), got {by_name[name]['lr_scale']:.6g}")
    # reference §2.3: 28 groups for ViT-B
    assert len(groups) == 28, (
        f"FT-CLIP §2.1 LLRD: expected 28 groups for ViT-B (14 layers x decay / no decay), got {len(groups)}")
    for name in ["cls_token", "pos_embed", "patch_embed.proj.bias", "blocks.0.norm1.weight", "blocks.3.attn.qkv.bias",
                 "fc_norm.bias", "head.bias"]:
        assert by_name[name]["weight_decay"] == 0.0, (
            f"MAE App. A.1: expected no weight decay on {name}, got {by_name[name]['weight_decay']}")
    for name in ["patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.11.mlp.fc2.weight", "head.weight"]:
        assert by_name[name]["weight_decay"] == 0.05, (
            f"MAE App. A.1: expected weight decay 0.05 on {name}, got {by_name[name]['weight_decay']}")


def test_llrd_clip_b16_puts_ln_pre_in_layer_0_and_matches_ftclip_groups_and_param_count():
    args = get_args(["--model", "clip_b16", "--pretrained", ""])
    with torch.device("meta"):
        model = build_model(args, 1000)
    groups = {g["name"]: g for g in param_groups_lrd(model, args.weight_decay, args.layer_decay)}
    # reference §3.3: layer_0_no_decay = {class_embedding, positional_embedding, ln_pre.w/b}; conv1 is frozen (§3.1)
    layer0 = set(groups["layer_0_no_decay"]["param_names"])
    assert layer0 == {"cls_token", "pos_embed", "norm_pre.weight", "norm_pre.bias"}, (
        "FT-CLIP §2.1 LLRD: expected CLIP's ln_pre (norm_pre) in layer 0 with cls_token and pos_embed, got "
        f"{layer0}")
    assert "layer_0_decay" not in groups and not model.patch_embed.proj.weight.requires_grad, (
        "FT-CLIP §2.1: expected the patch conv frozen, so no layer_0_decay group; got groups "
        f"{sorted(groups)[:3]}..., conv requires_grad {model.patch_embed.proj.weight.requires_grad}")
    assert groups["layer_13_decay"]["param_names"] == ["head.weight"], (
        f"FT-CLIP §2.1 LLRD: expected layer 13 (depth + 1) decay = [head.weight], got "
        f"{groups['layer_13_decay']['param_names']}")
    top = set(groups["layer_13_no_decay"]["param_names"])
    assert top == {"fc_norm.weight", "fc_norm.bias", "head.bias"}, (
        f"FT-CLIP §2.1 LLRD: expected fc_norm and head.bias in layer 13 (depth + 1), got {top}")
    for name, g in groups.items():
        i = int(name.split("_")[1])
        assert abs(g["lr_scale"] - FTCLIP_B_06[i]) <= 5e-7, (
            f"FT-CLIP §2.1 LLRD: group {name}: expected FT-CLIP's lr_scale {FTCLIP_B_06[i]} (0.6 ** (13 - "
            f"{i})), got {g['lr_scale']:.6g}")
    # ln_post, proj dropped
    assert model.norm_pre is not None and isinstance(model.norm, nn.Identity) and model.proj is None, (
        f"FT-CLIP §2.1: expected ln_pre kept, ln_post and proj dropped; got norm_pre {model.norm_pre}, norm "
        f"{model.norm}, proj {model.proj}")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # reference §3.1
    assert n == 85_978_600, f"FT-CLIP §2.1: expected 85,978,600 trainable parameters (reference), got {n:,}"


def test_group_lrs_after_real_steps_are_schedule_times_decay_power(tmp_path):
    args = get_args(["--model", "vit_test", "--output_dir", str(tmp_path), "--epochs", "3", "--warmup_epochs", "1",
                     "--max_steps", "6", "--layer_decay", "0.7", "--blr", "1e-3", "--min_lr", "1e-5"])
    torch.manual_seed(0)
    model = create_model("vit_test", global_pool="avg")                        # depth 2: ids 0..3
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(param_groups_lrd(model, args.weight_decay, args.layer_decay), lr=args.lr)
    data = torch.utils.data.TensorDataset(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)                 # 4 steps per epoch
    ctx = engine.Context(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), precision="fp32")
    for epoch in range(2):                                                     # stops after global step 5 (--max_steps 6)
        engine.train_one_epoch(model, lambda m, b: (F.cross_entropy(m(b[0]), b[1]), {}), loader, opt, epoch, args, ctx,
                               engine.MetricsLog(str(tmp_path), ctx))
    lr5 = engine.lr_at(5, total_steps=12, warmup_steps=4, lr=args.lr, min_lr=args.min_lr)
    # depth 2, decay 0.7, by hand: the embeddings (layer 0) 0.7^3, block 0 0.7^2, block 1 0.7, the head 1
    scale = {"cls_token": 0.343, "pos_embed": 0.343, "patch_embed": 0.343, "blocks.0": 0.49, "blocks.1": 0.7}
    for g in opt.param_groups:
        for name in g["param_names"]:
            want = lr5 * next((v for k, v in scale.items() if name.startswith(k)), 1.0)
            assert g["lr"] == pytest.approx(want, rel=1e-12), (
                f"FT-CLIP §2.1 LLRD: {name} after 6 steps: expected lr = schedule x its layer's scale "
                f"(0.343 / 0.49 / 0.7 / 1 for layers 0-3) = {want:.6g}, got {g['lr']:.6g}")
    assert not torch.equal(model.cls_token, start["cls_token"]), (           # even layer 0 moved (slowly)
        "FT-CLIP §2.1 LLRD: expected layer 0 (cls_token) to move too, with the smallest lr; got it unchanged")


# ----------------------------------------------------------------------------- presets = the papers' tables

def test_clip_b16_preset_is_ft_clip_table_10_base(capsys, monkeypatch):
    a = _resolved(capsys, monkeypatch, "--model", "clip_b16", world=8)
    table_10_b = dict(optimizer="adamw", blr=6e-4, lr_batch=2048, layer_decay=0.6, weight_decay=0.05, betas=[0.9, 0.999],
                      warmup_epochs=10, epochs=50, min_lr=1e-6, aa="rand-m9-mstd0.5-inc1", smoothing=0.1, mixup=0.0,
                      cutmix=0.0, drop_path=0.0, reprob=0.25, ema_decay=0.9998, layer_scale=None, rel_pos_bias=None,
                      # the released code (reference §3): CLIP mean/std, LN-then-mean head, conv1 frozen, crop 1.0
                      mean_std="clip", global_pool="ln_avg", freeze_patch_embed=True, crop_pct=1.0, clip_grad=None,
                      batch_size=256, accum_iter=1, arch="clip_b16", pretrained="openai", head_init_scale=1e-3)
    assert {k: a[k] for k in table_10_b} == table_10_b
    assert a["eff_batch_size"] == 2048 and a["lr"] == pytest.approx(6e-4)     # 8 GPUs x 256: the paper's lr
    one = _resolved(capsys, monkeypatch, "--model", "clip_b16", "--batch_size", "256")
    assert one["lr"] == pytest.approx(6e-4 * 256 / 2048)                       # one process: scaled to its batch


def test_clip_l14_preset_is_ft_clip_table_10_large(capsys, monkeypatch):
    a = _resolved(capsys, monkeypatch, "--model", "clip_l14", world=8)
    table_10_l = dict(blr=4e-4, lr_batch=2048, layer_decay=0.65, warmup_epochs=5, epochs=30, weight_decay=0.05,
                      min_lr=1e-6, smoothing=0.1, mixup=0.0, cutmix=0.0, drop_path=0.0, reprob=0.25, ema_decay=0.9998,
                      aa="rand-m9-mstd0.5-inc1", arch="clip_l14", batch_size=64, accum_iter=4)   # reference §3.8
    assert {k: a[k] for k in table_10_l} == table_10_l
    assert a["eff_batch_size"] == 2048 and a["lr"] == pytest.approx(4e-4)


def test_mae_presets_match_finetune_md_and_linear_probe_table_10(capsys, monkeypatch):
    b = _resolved(capsys, monkeypatch, "--model", "vit_base_patch16", world=32)   # FINETUNE.md: 32 GPUs x 32
    finetune_md = dict(blr=5e-4, lr_batch=256, layer_decay=0.65, epochs=100, drop_path=0.1, warmup_epochs=5, min_lr=1e-6,
                       weight_decay=0.05, mixup=0.8, cutmix=1.0, smoothing=0.1, reprob=0.25, global_pool="avg",
                       head_init_std=2e-5, head_init_scale=1.0, crop_pct=0.875, mean_std="imagenet", ema_decay=0.0,
                       batch_size=32, aa="rand-m9-mstd0.5-inc1", betas=[0.9, 0.999])
    assert {k: b[k] for k in finetune_md} == finetune_md and b["lr"] == pytest.approx(2e-3)
    assert _resolved(capsys, monkeypatch, "--model", "vit_base_patch16", "--accum_iter", "4", world=8)["lr"] == pytest.approx(2e-3)
    large = _resolved(capsys, monkeypatch, "--model", "vit_large_patch16")
    huge = _resolved(capsys, monkeypatch, "--model", "vit_huge_patch14")
    assert (large["blr"], large["layer_decay"], large["epochs"], large["drop_path"]) == (1e-3, 0.75, 50, 0.2)
    assert (huge["blr"], huge["layer_decay"], huge["epochs"], huge["drop_path"]) == (1e-3, 0.75, 50, 0.3)
    lin = _resolved(capsys, monkeypatch, "--model", "vit_base_patch16_linprobe", world=32)   # MAE App. A.1 Table 10
    assert dict(optimizer=lin["optimizer"], blr=lin["blr"], wd=lin["weight_decay"], warmup=lin["warmup_epochs"],
                epochs=lin["epochs"], mixup=lin["mixup"], aa=lin["aa"], reprob=lin["reprob"], pool=lin["global_pool"],
                linprobe=lin["linprobe"]) == dict(optimizer="lars", blr=0.1, wd=0.0, warmup=10, epochs=90, mixup=0.0,
                                                  aa="", reprob=0.0, pool="token", linprobe=True)
    assert lin["eff_batch_size"] == 16384 and lin["lr"] == pytest.approx(6.4)  # reference §2.6


@pytest.mark.parametrize("size,lr,epochs,warmup,decay,dpr,ls", [("base_patch16", 5e-4, 100, 20, 0.65, 0.1, 0.1),
                                                                ("large_patch16", 5e-4, 50, 5, 0.8, 0.2, 1e-5),
                                                                ("huge_patch14", 2e-4, 30, 5, 0.85, 0.25, 1e-5)])
def test_maskdistill_presets_match_appendix_c(capsys, monkeypatch, size, lr, epochs, warmup, decay, dpr, ls):
    a = _resolved(capsys, monkeypatch, "--model", f"maskdistill_vit_{size}", world=8)
    assert (a["lr"], a["eff_batch_size"], a["epochs"], a["warmup_epochs"], a["layer_decay"], a["drop_path"]) == \
        (pytest.approx(lr), 1024, epochs, warmup, decay, dpr)
    assert (a["min_lr"], a["weight_decay"], a["smoothing"], a["reprob"], a["mixup"], a["cutmix"]) == (1e-6, 0.05, 0.1, 0.25, 0.8, 1.0)
    assert (a["qv_bias"], a["rel_pos_bias"], a["layer_scale"], a["arch"]) == (True, True, ls, f"vit_{size}")
    assert a["shared_rel_pos_bias"] is False                                   # App. B / BEiT v2: one RPE table per block


# ----------------------------------------------------------------------------- the CLI end to end

def _run(out, *argv):
    model = finetune.main([*argv, "--output_dir", str(out)])
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    return model, rows


def test_tiny_clip_fine_tunes_through_the_cli_and_reports_raw_and_ema(tmp_path, tiny_clip):
    """A randomly initialised tiny ViT does not generalize on `shapes` within seconds (measured 10-12% held-out after
    12 epochs of 3000 images, ~25 s), so this checks that the whole FT-CLIP pipeline *learns*: it fits 320 training
    images, evaluated on an exact copy of them (an ImageFolder export). Measured: 35.9% raw and EMA top-1 (chance 10%)."""
    from data import main as data_main
    root = tmp_path / "shapes"
    data_main(["--data", "shapes", "--num_train", "320", "--num_val", "10", "--export", str(root)])
    shutil.rmtree(root / "val")
    shutil.copytree(root / "train", root / "val")
    out = tmp_path / "run"
    model, rows = _run(out, "--model", "clip_test", "--pretrained", tiny_clip[1], "--data", str(root))
    evals = [r for r in rows if "val_acc1" in r]
    assert len(evals) == 20 and all(r["val_acc1_ema"] is not None for r in evals)
    summary = json.load(open(out / "summary.json"))
    assert summary["best_acc1"] > 25 and summary["best_acc1_ema"] > 25, summary
    assert summary["best_acc1"] == max(r["val_acc1"] for r in evals)
    assert summary["best_acc1_ema"] == max(r["val_acc1_ema"] for r in evals) and summary["selected_by"] == "ema"
    assert summary["last_acc1"] == evals[-1]["val_acc1"] and summary["last_acc1_ema"] == evals[-1]["val_acc1_ema"]
    best = torch.load(out / "checkpoint-best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] == summary["best_acc1_ema_epoch"]
    clip_conv = torch.load(tiny_clip[1], weights_only=True)["visual.conv1.weight"]
    assert torch.equal(model.patch_embed.proj.weight, clip_conv)               # conv1 loaded and frozen (FT-CLIP code)


def _encoder(path, **cfg):
    """An encoder.pt as engine.save_encoder writes it (vit_test-sized unless overridden); returns its state dict."""
    torch.manual_seed(1)
    vit = ViT(ViTConfig(**{**VIT_PRESETS["vit_test"], "num_classes": 0, **cfg}))
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(torch.randn_like(p) * 0.02)                                 # no all-zero/one tensors to hide behind
    engine.save_encoder(str(path), vit, vit.cfg, "test", argparse.Namespace(note="test"))
    return {k: v.clone() for k, v in vit.state_dict().items()}


def test_freeze_blocks_leaves_frozen_weights_bit_identical(tmp_path):
    enc = _encoder(tmp_path / "enc.pt")
    model, _ = _run(tmp_path / "run", "--model", "vit_test", "--init", str(tmp_path / "enc.pt"), "--freeze_blocks", "1",
                    "--num_train", "64", "--num_val", "16", "--epochs", "1")
    after = model.state_dict()
    for k in enc:
        frozen = k.startswith(("patch_embed.", "blocks.0.")) or k in ("cls_token", "pos_embed")
        if k.startswith("norm."):
            continue                                                           # dropped: avg pool uses a new fc_norm
        assert torch.equal(after[k], enc[k]) == frozen, k                      # frozen: bit-identical; the rest moved


def test_linear_probe_trains_only_the_head_on_the_cls_feature(tmp_path):
    enc = _encoder(tmp_path / "enc.pt")
    model, rows = _run(tmp_path / "run", "--model", "vit_test_linprobe", "--init", str(tmp_path / "enc.pt"),
                       "--num_train", "64", "--num_val", "16", "--train_fraction", "0.5")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.1.weight", "head.1.bias"]
    bn = model.head[0]
    assert isinstance(bn, nn.BatchNorm1d) and bn.weight is None and bn.eps == 1e-6     # affine=False (MAE App. A.1)
    assert bn.running_var.ne(1).any()                                          # it saw the features
    for k, v in enc.items():
        assert torch.equal(model.state_dict()[k], v), k                        # incl. the final norm: frozen, used
    assert model.cfg.global_pool == "token" and max(r["step"] for r in rows) == 2 * (32 // 16)   # half of 64 labels


def test_mini_linprobe_lr_trains_the_head_within_its_schedule_where_maes_blr_does_not():
    """LARS moves a weight matrix by lr x 0.001 of its norm per step: MAE's blr 0.1 is set for ~7,000 steps at
    batch 16,384 (lr 6.4). At a laptop's batch the same blr leaves BN + Linear near its init (loss ~ ln 10), which
    is why the lab's probe read chance before; the mini preset's blr must fit the head in a few hundred steps."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (512,), generator=g)
    x = torch.randn(512, 128, generator=g) + 1.5 * F.one_hot(y, 128).float()        # linearly separable-ish

    def loss_after(blr, steps=100):   # the probe as finetune.py builds it: its BN + Linear head, its LARS
        args = get_args(["--model", "vit_mini_linprobe", *(["--blr", str(blr)] if blr else [])])
        torch.manual_seed(0)
        model = build_model(args, 10)
        opt = finetune.build_optimizer(model, args)                   # the head is all that trains
        for _ in range(steps):                                        # full batch on fixed features
            loss = F.cross_entropy(model.head(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return F.cross_entropy(model.head(x), y).item()
    assert loss_after(None) < 0.5 * math.log(10)                     # the preset's blr (10)
    assert loss_after(0.1) > 0.95 * math.log(10)                     # MAE's


@pytest.mark.parametrize("workers", ["0", "2"])
def test_resume_with_ema_equals_uninterrupted_bitwise(tmp_path, workers):
    argv = ["--model", "vit_test", "--num_train", "64", "--num_val", "16", "--epochs", "3", "--log_every", "1",
            "--num_workers", workers,
            "--mixup", "0.8", "--cutmix", "1.0", "--aa", "rand-m9-mstd0.5-inc1", "--reprob", "0.25", "--drop_path", "0.1"]
    _, straight = _run(tmp_path / "straight", *argv)
    _, killed = _run(tmp_path / "killed", *argv, "--max_steps", "8")          # "killed" after 2 of 3 epochs
    assert max(r["step"] for r in killed) == 8
    _, resumed = _run(tmp_path / "killed", *argv, "--resume", "auto")
    loss = lambda rows: {r["step"]: r["loss"] for r in rows if "loss" in r}   # noqa: E731 - later lines win
    assert [loss(resumed)[s] for s in range(9, 13)] == [loss(straight)[s] for s in range(9, 13)]   # bitwise
    a, b = (torch.load(tmp_path / d / "checkpoint-0002.pt", weights_only=True) for d in ["straight", "killed"])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert json.load(open(tmp_path / "straight" / "summary.json")) == json.load(open(tmp_path / "killed" / "summary.json"))


def test_torchrun_two_processes_agree_and_eval_counts_every_image(tmp_path):
    out = tmp_path / "ddp"
    argv = ["--model", "vit_test", "--num_train", "64", "--num_val", "31", "--batch_size", "8", "--epochs", "1"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO, "tests", "ddp_driver.py"), "finetune", *argv, "--output_dir", str(out)]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout
    a, b = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    last = [json.loads(line) for line in open(out / "metrics.jsonl")][-1]
    # the same checkpoint evaluated by one process on all 31 images: the 2-process counts were summed, not averaged
    finetune.main([*argv, "--output_dir", str(out), "--resume", str(out / "checkpoint-0000.pt"), "--eval_only"])
    single = json.load(open(out / "eval.json"))
    assert (single["acc1"], single["acc1_ema"]) == (last["val_acc1"], last["val_acc1_ema"])
    assert json.load(open(out / "summary.json"))["last_acc1"] == last["val_acc1"]


def test_init_from_an_mae_encoder_loads_every_key(tmp_path):
    import mae
    mae.main(["--model", "mae_vit_test", "--num_train", "32", "--num_val", "8", "--batch_size", "16", "--epochs", "1",
              "--num_workers", "0", "--output_dir", str(tmp_path / "mae")])
    path = tmp_path / "mae" / "encoder.pt"
    enc = torch.load(path, weights_only=True)["model"]
    model = finetune.main(["--model", "vit_test", "--init", str(path), "--num_val", "16", "--eval_only",
                           "--output_dir", str(tmp_path / "eval")])
    for k, v in enc.items():
        if not k.startswith("norm."):                                          # MAE's final norm -> a new fc_norm (avg pool)
            assert torch.equal(model.state_dict()[k], v), k
    assert model.pos_embed.requires_grad                                       # MAE App. A.1: sin-cos becomes learnable
    _run(tmp_path / "ft", "--model", "vit_test", "--init", str(path), "--num_train", "32", "--num_val", "16", "--max_steps", "1")


def test_init_takes_the_architecture_from_a_maskdistill_student(tmp_path):
    enc = _encoder(tmp_path / "student.pt", rel_pos_bias=True, qv_bias=True, layer_scale=0.1, mask_token=True)
    args = get_args(["--model", "vit_test", "--init", str(tmp_path / "student.pt"), "--output_dir", str(tmp_path)])
    model = build_model(args, 10)
    assert model.blocks[0].attn.q_bias is not None and model.mask_token is None
    assert torch.equal(model.blocks[1].gamma_2, enc["blocks.1.gamma_2"])
    # any preset, not only maskdistill_*: BEiT v2 / MaskDistill App. B give every block its own copy of the table
    assert model.rel_pos_bias is None
    for blk in model.blocks:
        assert torch.equal(blk.attn.relative_position_bias_table, enc["rel_pos_bias.relative_position_bias_table"])
    args = get_args(["--model", "vit_test", "--init", str(tmp_path / "student.pt"), "--shared_rel_pos_bias",
                     "--output_dir", str(tmp_path)])
    shared = build_model(args, 10)                                             # --shared_rel_pos_bias keeps one
    assert torch.equal(shared.rel_pos_bias.relative_position_bias_table, enc["rel_pos_bias.relative_position_bias_table"])
    assert shared.blocks[0].attn.relative_position_bias_table is None
    assert layer_id("rel_pos_bias.relative_position_bias_table", 2) == 3      # BEiT: the shared RPE is a top layer


def test_maskdistill_fine_tuning_copies_the_shared_rpe_into_each_block_at_its_layer_lr(tmp_path, capsys):
    """BEiT v2 run_class_finetuning.py (MaskDistill App. B: "shared relative positional embeddings ✗" downstream): the
    student's one table becomes one per block, blocks.{i}.attn.relative_position_bias_table, in block i's lr group."""
    enc = _encoder(tmp_path / "student.pt", rel_pos_bias=True, qv_bias=True, layer_scale=0.1, mask_token=True)
    argv = ["--model", "maskdistill_vit_base_patch16", "--arch", "vit_test", "--init", str(tmp_path / "student.pt"),
            "--img_size", "32", "--output_dir", str(tmp_path)]
    torch.manual_seed(0)
    per_block = build_model(get_args(argv), 10).eval()                        # the preset: one table per block
    assert "copied into each of the 2 blocks" in capsys.readouterr().out
    torch.manual_seed(0)
    shared = build_model(get_args([*argv, "--shared_rel_pos_bias"]), 10).eval()
    assert per_block.rel_pos_bias is None and shared.rel_pos_bias is not None
    for blk in per_block.blocks:
        assert torch.equal(blk.attn.relative_position_bias_table, enc["rel_pos_bias.relative_position_bias_table"])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(per_block(x), shared(x))                           # the same function before any training
    by_name = _by_name(param_groups_lrd(per_block, 0.05, 0.65))
    for i, scale in [(0, 0.4225), (1, 0.65)]:                             # block i's lr: 0.65 ** 2, 0.65
        name = f"blocks.{i}.attn.relative_position_bias_table"
        assert layer_id(name, 2) == i + 1 and by_name[name]["lr_scale"] == pytest.approx(scale), name
        assert by_name[name]["weight_decay"] == 0.05                           # decayed, as BEiT v2's default


def test_fine_tuning_a_student_at_a_larger_img_size_resizes_its_rpe(tmp_path, capsys):
    """BEiT v2's 224 -> 384 at /16 (14x14 -> 24x24 patches, table 27x27 -> 47x47 offsets) with a tiny student at 112 ->
    192 px (/8: the same grids)."""
    enc = _encoder(tmp_path / "s112.pt", img_size=112, rel_pos_bias=True, qv_bias=True, layer_scale=0.1, mask_token=True)
    argv = ["--model", "maskdistill_vit_base_patch16", "--arch", "vit_test", "--init", str(tmp_path / "s112.pt"),
            "--img_size", "192", "--output_dir", str(tmp_path)]
    torch.manual_seed(0)
    model = build_model(get_args(argv), 10).eval()
    out = capsys.readouterr().out
    assert "relative position bias 27x27 -> 47x47 offsets (grid 24x24" in out and "copied into each of the 2" in out
    src = enc["rel_pos_bias.relative_position_bias_table"]                      # (732, 2)
    want = weights.resize_rel_pos_bias(src, (24, 24))                               # (2212, 2), tests/test_vit.py pins it
    for blk in model.blocks:
        assert torch.equal(blk.attn.relative_position_bias_table, want)
    new, old = want[:-3].reshape(47, 47, 2), src[:-3].reshape(27, 27, 2)
    assert torch.equal(new[22:25, 22:25], old[12:15, 12:15]) and torch.equal(want[-3:], src[-3:])   # 0, +-1; cls rows
    torch.manual_seed(0)
    shared = build_model(get_args([*argv, "--shared_rel_pos_bias"]), 10).eval()
    x = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (2, 10) and torch.isfinite(logits).all() and logits.abs().max() < 1.0   # head x 0.001
        assert torch.equal(logits, shared(x))                                   # both paths resize the same way


def test_cli_fine_tunes_a_student_at_another_img_size(tmp_path):
    """The issue's repro: a 32 px student (4x4 grid, table 52 x 2) fine-tuned at 48 px (6x6, 124 x 2) exited with a
    shape mismatch; now its table is resized and the first losses are ~ln 10 (a near-zero head on 10 classes)."""
    _encoder(tmp_path / "s32.pt", rel_pos_bias=True, qv_bias=True, layer_scale=0.1, mask_token=True)
    _, rows = _run(tmp_path / "ft", "--model", "vit_test", "--init", str(tmp_path / "s32.pt"), "--img_size", "48",
                   "--num_train", "32", "--num_val", "16", "--max_steps", "1", "--log_every", "1")
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses and all(abs(v - math.log(10)) < 0.5 for v in losses), losses   # ~ln 10 from a near-zero head


def test_openai_torchscript_file_loads_like_a_state_dict(tmp_path, tiny_clip):
    clip_model, path = tiny_clip
    with warnings.catch_warnings():                                            # OpenAI's .pt files are TorchScript
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(clip_model.visual, torch.randn(1, 3, 32, 32), check_trace=False)
    torch.jit.save(traced, str(tmp_path / "openai.pt"))
    models = [build_model(get_args(["--model", "clip_test", "--pretrained", p, "--output_dir", str(tmp_path)]), 10)
              for p in [path, str(tmp_path / "openai.pt")]]
    for (k, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        if not k.startswith("head."):                                          # the head is new (random) in both
            assert torch.equal(a, b), k


# ----------------------------------------------------------------------------- clear errors

def test_unknown_model_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        get_args(["--model", "clip_b32"])
    assert "choose one of: clip_b16, clip_l14, vit_base_patch16" in capsys.readouterr().err


def test_missing_and_misfit_weights_name_the_path_and_the_keys(tmp_path):
    args = get_args(["--model", "clip_test", "--pretrained", "/missing/clip.pt", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="/missing/clip.pt: no such file"):
        build_model(args, 10)
    args = get_args(["--model", "vit_test", "--init", str(tmp_path / "nope.pt"), "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="nope.pt: no such file"):
        build_model(args, 10)
    torch.save({"model": create_model("vit_mini").state_dict()}, tmp_path / "mini.pt")       # no vit_config: misfit
    args = get_args(["--model", "vit_test", "--init", str(tmp_path / "mini.pt"), "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"does not fit --model vit_test.*patch_embed\.proj\.weight") as e:
        build_model(args, 10)
    assert "\n" not in str(e.value)


def test_pretrained_openai_offline_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = get_args(["--model", "clip_b16", "--output_dir", str(tmp_path)])    # the preset's --pretrained openai
    result = {}

    def target():
        try:
            build_model(args, 10)
        except SystemExit as e:
            result["error"] = str(e)
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        pytest.skip("open_clip did not fail within 60 s with HF_HUB_OFFLINE=1 (a network timeout?)")
    assert "HF_HUB_OFFLINE" in result["error"] and "local file" in result["error"] and "\n" not in result["error"]


# ----------------------------------------------------------------------------- issue 10: batch table, EMA, presets, --init

# The papers' / official code's (lr, total batch) per FT-CLIP preset: Table 10 (B 6e-4, L 4e-4 at 2048; reference §3.8);
# LightDXY/FT-CLIP scripts/bash_fine_Openai_CLIP_P16_384_FT_ZIP.sh (lr 7e-4, 8 GPUs x 64 x update_freq 4 = 2048) and
# logs/CLIP_L14_336.log ("LR = 0.00060000", "Batch size = 1920": 24 GPUs x 20 x update_freq 4).
PAPER_LR_AT_BATCH = {"clip_b16": (6e-4, 2048), "clip_l14": (4e-4, 2048), "clip_b16_384": (7e-4, 2048),
                     "clip_l14_336": (6e-4, 1920)}


def _readme_batch_table():
    """README's FT-CLIP batch table: ([preset per column], [(world, [cell per column])])."""
    import re
    text = open(os.path.join(REPO, "README.md")).read()
    section = text[text.index("### FT-CLIP fine-tuning (finetune.py)"):]
    lines = section[section.index("| GPUs |"):].splitlines()
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]   # noqa: E731
    header, rows = cells(lines[0]), []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        row = cells(line)
        rows.append((int(row[0]), [re.findall(r"`([^`]*)`", c) if c != "—" else None for c in row[1:]]))
    return [h.split()[0] for h in header[1:]], rows


def test_readme_batch_table_gives_every_row_the_papers_batch_and_lr(capsys, monkeypatch):
    presets, rows = _readme_batch_table()
    assert presets == list(PAPER_LR_AT_BATCH) and len(rows) >= 3
    checked = 0
    for world, row in rows:
        for preset, flags in zip(presets, row):
            if flags is None:                                                  # "—": not a divisor of the batch
                continue
            a = _resolved(capsys, monkeypatch, "--model", preset, *" ".join(flags).split(), world=world)
            lr, batch = PAPER_LR_AT_BATCH[preset]
            where = f"README row {world} GPUs, {preset}: {flags}"
            assert a["batch_size"] * a["accum_iter"] * world == a["eff_batch_size"] == batch, where
            assert a["lr"] == pytest.approx(lr, rel=1e-12), where
            assert a["ema_decay"] == pytest.approx(0.9998, rel=1e-12), where   # Table 3: 0.9998 at the recipe's batch
            checked += 1
    assert checked == sum(f is not None for _, row in rows for f in row) >= 9     # 1 and 8 GPUs for every preset


def test_ema_decay_is_scaled_to_the_batch_and_ema_decay_sets_it_exactly(capsys, monkeypatch):
    one = _resolved(capsys, monkeypatch, "--model", "clip_b16")                # 1 process x 256: 8x the steps
    assert one["ema_decay"] == pytest.approx(0.9998 ** (256 / 2048), rel=1e-14) and one["ema_scaled"]
    assert _resolved(capsys, monkeypatch, "--model", "clip_l14_336", world=24)["ema_decay"] == 0.9998
    exact = _resolved(capsys, monkeypatch, "--model", "clip_b16", "--ema_decay", "0.9998")
    assert exact["ema_decay"] == 0.9998 and not exact["ema_scaled"]
    assert _resolved(capsys, monkeypatch, "--model", "clip_b16", "--ema_decay", "0")["ema_decay"] == 0.0
    assert _resolved(capsys, monkeypatch, "--model", "vit_base_patch16", world=32)["ema_decay"] == 0.0   # MAE: no EMA
    with pytest.raises(SystemExit):
        get_args(["--model", "clip_b16", "--ema_decay", "1.5"])
    assert "not in [0, 1)" in capsys.readouterr().err


def test_start_up_line_prints_the_recipes_and_the_used_ema_decay(tmp_path, capsys):
    argv = ["--model", "vit_test", "--num_train", "32", "--num_val", "8", "--max_steps", "1", "--epochs", "1"]
    finetune.main([*argv, "--batch_size", "8", "--output_dir", str(tmp_path / "a")])    # vit_test: 0.9 at batch 16
    out = capsys.readouterr().out
    assert f"EMA decay {0.9 ** 0.5:.6g} per step (the recipe's 0.9 at batch 16, scaled to batch 8" in out
    finetune.main([*argv, "--batch_size", "8", "--ema_decay", "0.95", "--output_dir", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert f"EMA decay 0.95 per step (--ema_decay exactly; the recipe's 0.9 at batch 16 would be {0.9 ** 0.5:.6g}" in out
    assert torch.load(tmp_path / "b" / "checkpoint-0000.pt", weights_only=True)["args"]["ema_decay"] == 0.95


def test_high_resolution_presets_are_ft_clips_384_and_336_runs(capsys, monkeypatch):
    # LightDXY/FT-CLIP scripts/bash_fine_Openai_CLIP_P16_384_FT_ZIP.sh + logs/CLIP_B16_384.log (Namespace line)
    b = _resolved(capsys, monkeypatch, "--model", "clip_b16_384", world=8)
    b384 = dict(arch="clip_b16", img_size=384, freeze_patch_embed=False, batch_size=64, accum_iter=4, eff_batch_size=2048,
                epochs=50, warmup_epochs=10, layer_decay=0.6, drop_path=0.0, weight_decay=0.05, min_lr=1e-6,
                smoothing=0.1, reprob=0.25, mixup=0.0, cutmix=0.0, crop_pct=1.0, mean_std="clip", global_pool="ln_avg",
                aa="rand-m9-mstd0.5-inc1", ema_decay=0.9998)
    assert {k: b[k] for k in b384} == b384 and b["lr"] == pytest.approx(7e-4, rel=1e-12)
    # scripts/bash_fine_Openai_CLIP_Large_P14_336.sh + logs/CLIP_L14_336.log: world_size 24, "Batch size = 1920"
    lg = _resolved(capsys, monkeypatch, "--model", "clip_l14_336", world=24)
    l336 = dict(arch="clip_l14", img_size=336, freeze_patch_embed=False, batch_size=20, accum_iter=4, eff_batch_size=1920,
                epochs=30, warmup_epochs=5, layer_decay=0.65, drop_path=0.0, weight_decay=0.05, min_lr=1e-6,
                smoothing=0.1, reprob=0.25, mixup=0.0, cutmix=0.0, crop_pct=1.0, ema_decay=0.9998)
    assert {k: lg[k] for k in l336} == l336 and lg["lr"] == pytest.approx(6e-4, rel=1e-12)


@pytest.mark.parametrize("preset,grid,params", [("clip_b16_384", 24, 86_860_264), ("clip_l14_336", 24, 304_532_456)])
def test_high_resolution_presets_build_with_24x24_positions_and_a_trained_patch_conv(preset, grid, params):
    """Params: the official logs' "number of params" (its trainable count: conv1 included, its unused frozen timm
    PatchEmbed not), logs/CLIP_B16_384.log and logs/CLIP_L14_336.log; all of ours are trainable (freeze_conv1 False)."""
    args = get_args(["--model", preset, "--pretrained", ""])
    with torch.device("meta"):
        model = build_model(args, 1000)
    assert model.pos_embed.shape == (1, 1 + grid * grid, model.cfg.embed_dim) and model.cfg.img_size == grid * model.cfg.patch_size
    assert model.patch_embed.proj.weight.requires_grad
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in model.parameters() if p.requires_grad) == params
    groups = {g["name"]: g for g in param_groups_lrd(model, args.weight_decay, args.layer_decay)}
    assert groups["layer_0_decay"]["param_names"] == ["patch_embed.proj.weight"]   # the logs' layer_0_decay: conv1.weight


def test_high_resolution_preset_resizes_clips_positions_on_load(tmp_path, tiny_clip):
    from weights import clip_to_vit_state_dict, resize_pos_embed
    args = get_args(["--model", "clip_b16_384", "--arch", "clip_test", "--img_size", "48", "--pretrained", tiny_clip[1],
                     "--output_dir", str(tmp_path)])
    model = build_model(args, 10)                                              # the tiny CLIP's 4x4 grid -> 6x6
    clip_pos = clip_to_vit_state_dict(torch.load(tiny_clip[1], weights_only=True))["pos_embed"]
    assert clip_pos.shape[1] == 17 and model.pos_embed.shape[1] == 37
    assert torch.equal(model.pos_embed.detach(), resize_pos_embed(clip_pos, (6, 6)))
    assert model.patch_embed.proj.weight.requires_grad


@pytest.fixture(scope="module")
def ft_run(tmp_path_factory):
    """A 2-epoch vit_test fine-tuning of an encoder.pt with EMA (0.9): (output dir, encoder path)."""
    d = tmp_path_factory.mktemp("ft_run")
    _encoder(d / "enc.pt")
    finetune.main(["--model", "vit_test", "--init", str(d / "enc.pt"), "--num_train", "32", "--num_val", "16",
                   "--epochs", "2", "--output_dir", str(d / "run")])
    return d / "run", d / "enc.pt"


def test_resume_start_up_line_names_the_checkpoint_and_its_epoch(ft_run, tmp_path, capsys):
    run, enc = ft_run
    ckpt = run / "checkpoint-0000.pt"
    capsys.readouterr()
    finetune.main(["--model", "vit_test", "--init", str(enc), "--resume", str(ckpt), "--eval_only", "--num_val", "16",
                   "--output_dir", str(tmp_path)])
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[finetune] vit_test")][0]
    assert line.endswith(f"weights: checkpoint {ckpt} (epoch 0 done), not --init {enc}"), line


def test_init_takes_the_ema_of_a_checkpoint_selected_by_ema(ft_run, tmp_path, capsys):
    run, enc = ft_run
    best = torch.load(run / "checkpoint-best.pt", weights_only=True)
    assert best["extra"]["selected_by"] == "ema"
    assert any(not torch.equal(best["ema"][k], best["model"][k]) for k in best["model"])
    for flags, key, said in [([], "ema", "(its EMA weights; --no-init_ema for the raw ones)"),
                             (["--no-init_ema"], "model", "(its raw weights)")]:
        capsys.readouterr()
        model = finetune.main(["--model", "vit_test", "--init", str(run / "checkpoint-best.pt"), *flags, "--eval_only",
                               "--num_val", "16", "--output_dir", str(tmp_path / key)])
        for k, v in best[key].items():                                         # head included: same 10 classes
            assert torch.equal(model.state_dict()[k], v), (key, k)
        assert f"weights: --init {run / 'checkpoint-best.pt'} {said}" in capsys.readouterr().out
    args = get_args(["--model", "vit_test", "--init", str(enc), "--init_ema", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="holds no EMA weights") as e:         # an encoder.pt has no EMA
        build_model(args, 10)
    assert "\n" not in str(e.value)


def _timm_vit(kw):
    import functools
    from timm.models.vision_transformer import VisionTransformer
    kw = dict(kw)
    eps = kw.pop("norm_eps")
    return VisionTransformer(**kw, norm_layer=functools.partial(nn.LayerNorm, eps=eps)).eval()


def test_export_names_what_is_wrong_with_a_file(ft_run, tmp_path, capsys):
    run, _ = ft_run
    for flag, key, which in [([], "ema", "EMA"), (["--raw"], "model", "raw")]:
        out = tmp_path / f"{key}.pth"
        weights.main(["export", str(run / "checkpoint-best.pt"), "--out", str(out), *flag])
        assert f"[export] {which} weights of" in capsys.readouterr().out and out.is_file()
    torch.save({"model": create_model("vit_test").state_dict()}, tmp_path / "bare.pt")      # no architecture recorded
    with pytest.raises(SystemExit, match="bare.pt: not a finetune.py fine-tuning checkpoint"):
        weights.main(["export", str(tmp_path / "bare.pt"), "--out", str(tmp_path / "x.pth")])
    with pytest.raises(SystemExit, match="holds no EMA"):
        weights.main(["export", str(ft_run[1]), "--out", str(tmp_path / "x.pth"), "--ema"])


@pytest.mark.parametrize("arch", list(weights.TIMM_NAMES))
def test_timm_names_have_the_exported_layout(arch):
    import timm
    pool = "ln_avg" if arch.startswith("clip") else "avg"
    with torch.device("meta"):
        ours = ViT(ViTConfig(**{**VIT_PRESETS[arch], "num_classes": 1000, "proj_dim": 0, "global_pool": pool}))
        sd, kw = weights.timm_state_dict(ours)
        ref = timm.create_model(weights.TIMM_NAMES[arch], pretrained=False, num_classes=1000, global_pool="avg",
                                fc_norm=kw["fc_norm"])
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    blk = ref.blocks[0]
    assert isinstance(ref.norm_pre, nn.Identity) != kw["pre_norm"]                 # CLIP's ln_pre
    assert blk.norm1.eps == kw["norm_eps"] and type(blk.mlp.act).__name__ == ("QuickGELU" if arch.startswith("clip") else "GELU")


def test_init_from_an_encoder_of_another_architecture_is_one_clear_line(tmp_path):
    _encoder(tmp_path / "enc.pt")                                              # a vit_test-sized encoder (0.11 M)
    args = get_args(["--model", "vit_mini", "--init", str(tmp_path / "enc.pt"), "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        build_model(args, 10)
    msg = str(e.value)
    assert "\n" not in msg and "vit_mini" in msg and "--arch vit_test" in msg
    assert "patch 8, width 64, depth 2, 2 heads" in msg and "patch 4, width 128, depth 4, 4 heads" in msg


@pytest.mark.parametrize("arch", list(weights.BEIT_NAMES))
def test_beit_names_rebuild_the_exported_maskdistill_layout(arch):
    """The printed timm.create_model call for a MaskDistill B/L student (beitv2_*: layer scale 1e-5, no absolute
    positions by default) rebuilds exactly the exported keys and shapes."""
    import timm
    with torch.device("meta"):
        ours = ViT(ViTConfig(**{**VIT_PRESETS[arch], "num_classes": 1000, "qv_bias": True, "rel_pos_bias": True,
                                "shared_rel_pos_bias": False, "layer_scale": 0.1, "global_pool": "avg"}))
        sd, kw = weights.timm_state_dict(ours)
        name, over = weights.timm_create_args(arch, kw)
        ref = timm.create_model(name, pretrained=False, **over)
    assert name.startswith("beitv2_") and over["use_abs_pos_emb"] and over["init_values"] == 0.1
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert ref.blocks[0].gamma_1.shape == (kw["embed_dim"],) and isinstance(ref.norm, nn.Identity)    # mean, then fc_norm
    clip_rpe = create_model("clip_test", rel_pos_bias=True, proj_dim=0, num_classes=10, global_pool="ln_avg")
    with pytest.raises(SystemExit, match="neither CLIP's ln_pre nor QuickGELU"):   # no timm model has RPE + ln_pre
        weights.timm_state_dict(clip_rpe)


# ----------------------------------------------------------------------------- official files, runs that never collide

class _NotAllowed:                       # a class no checkpoint of ours or of the official code pickles
    pass


def test_official_mae_checkpoint_with_a_pickled_namespace_inits_and_others_say_what_is_wrong(tmp_path, capsys):
    """facebookresearch/mae main_pretrain/main_finetune save {"model", "optimizer", "epoch", "scaler", "args"} with args
    an argparse.Namespace: weights_only=True refuses it unless allowed. It used to read "probably truncated"."""
    enc = _encoder(tmp_path / "enc.pt")
    official = tmp_path / "checkpoint-399.pth"
    torch.save({"model": enc, "epoch": 399, "scaler": {}, "args": argparse.Namespace(model="vit_test", blr=1.5e-4)},
               official)
    model = finetune.main(["--model", "vit_test", "--init", str(official), "--eval_only", "--num_val", "16",
                           "--output_dir", str(tmp_path / "eval")])
    assert torch.equal(model.blocks[1].mlp.fc1.weight, enc["blocks.1.mlp.fc1.weight"])
    torch.save({"model": enc, "args": _NotAllowed()}, tmp_path / "odd.pth")         # intact, but unpicklable here
    with pytest.raises(SystemExit) as e:
        finetune.main(["--model", "vit_test", "--init", str(tmp_path / "odd.pth"), "--eval_only",
                       "--output_dir", str(tmp_path / "odd")])
    msg = str(e.value)
    assert "\n" not in msg and "is intact but pickles" in msg and "_NotAllowed" in msg and "truncated" not in msg
    data = official.read_bytes()
    official.write_bytes(data[: len(data) // 2])                                      # now it IS truncated
    with pytest.raises(SystemExit, match="unreadable, probably truncated"):
        finetune.main(["--model", "vit_test", "--init", str(official), "--eval_only", "--output_dir", str(tmp_path / "t")])


def test_two_readme_fine_tunings_never_share_a_folder_and_a_rerun_is_refused(tmp_path, monkeypatch, capsys):
    """The README's quick start: fine-tune the MAE encoder, then the step-0 encoder, each in its own folder; running
    the same command again is refused (one line naming what to pass), --overwrite replaces, --resume auto continues."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "mae_x").mkdir(parents=True)
    _encoder(tmp_path / "runs" / "mae_x" / "encoder.pt")
    _encoder(tmp_path / "runs" / "mae_x" / "encoder_init.pt")
    common = ["--model", "vit_test", "--num_train", "32", "--num_val", "16", "--epochs", "1"]
    a = get_args([*common, "--init", "runs/mae_x/encoder.pt"]).output_dir
    b = get_args([*common, "--init", "runs/mae_x/encoder_init.pt"]).output_dir
    assert a == os.path.join("runs", "finetune_vit_test_from_mae_x") and b.endswith("from_mae_x_init")
    finetune.main([*common, "--init", "runs/mae_x/encoder.pt"])
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"[done] results in {a}{os.sep}: summary.json, " \
                                                               f"checkpoint-best.pt, metrics.jsonl"
    first = (tmp_path / a / "summary.json").read_text()
    with pytest.raises(SystemExit):
        finetune.main([*common, "--init", "runs/mae_x/encoder.pt"])
    err = capsys.readouterr().err
    assert "holds an earlier run" in err and "--resume auto" in err and "--overwrite" in err
    assert (tmp_path / a / "summary.json").read_text() == first                       # nothing touched
    finetune.main([*common, "--init", "runs/mae_x/encoder.pt", "--overwrite", "--seed", "1"])
    rows = [json.loads(x) for x in (tmp_path / a / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "val_acc1" in r] == [0]                       # one run's log, not two mixed


def test_eval_every_evaluates_every_nth_and_the_last_epoch_and_label_seed_fixes_the_labels(tmp_path, monkeypatch):
    argv = ["--model", "vit_test", "--num_train", "64", "--num_val", "16", "--epochs", "3", "--eval_every", "2",
            "--train_fraction", "0.5", "--label_seed", "7"]
    finetune.main([*argv, "--output_dir", str(tmp_path / "a")])
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "val_acc1" in r] == [1, 2]                   # epoch 2: the last
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["last_epoch"] == 2
    from data import build_dataset, subset_fraction
    full = build_dataset("shapes", "train", num_train=64)
    assert subset_fraction(full, 0.5, 7).targets != subset_fraction(full, 0.5, 1).targets
    drawn = []
    monkeypatch.setattr(finetune, "subset_fraction", lambda ds, f, seed: drawn.append(seed) or subset_fraction(ds, f, seed))
    for seed in ("1", "2"):     # the training seed changes; the labelled images stay seed 7's
        finetune.main([*argv, "--seed", seed, "--max_steps", "1", "--output_dir", str(tmp_path / seed)])
    finetune.main([*argv[:-2], "--seed", "3", "--max_steps", "1", "--output_dir", str(tmp_path / "3")])
    assert drawn == [7, 7, 3]                                                          # default: --seed
