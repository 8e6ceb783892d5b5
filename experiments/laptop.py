"""The papers' claims in miniature on a laptop CPU: each with 3 seeds (5 for an unstable row) and a verdict computed
from the numbers: reproduces, contradicts or inconclusive, beside the smallest effect the run could detect.

Everything runs through the concept files' own entry points (mae.main, maskdistill.main, finetune.main: the
code of the command lines) with the `_mini` presets. Pre-registered design (written before the full run that
results.json holds; experiments/README.md, "The design"; its probes in experiments/probes_2026-12-06.jsonl):

Data. `atoms` (data.py): 10 classes of contour families at any rotation, size, position and colour over dead
leaves, partly occluded; 32 px. Pre-training sees its 10,000 train images without labels. Every evaluation uses
the same 200 labels (20 per class, one class-stratified draw, --label_seed 0) and the same 5,000 val images;
a seed s changes the pre-training, the fine-tuning and the probes (init, order, masks, augmentation), never
the labels. The teacher (studies 3-5) is a vit_mini trained with labels on `atoms_pool`: 10,000 other images of
10 *other* contour families (the other half of the checkerboard of lobe counts x profiles); it has never seen
an `atoms` image or label, as CLIP never saw ImageNet's labels (README says exactly what it saw).

Metrics. FT: the vit_mini recipe (AdamW, layer decay 0.75, mean pool + fc_norm, smoothing 0.1, crops 80-100%,
no RandAug / mixup) on the 200 labels, batch 32, blr 8e-3, 40 epochs (30 for study 4's strong encoder); val
top-1 at the last epoch (and at epoch 20 for 1c). LP: MAE's linear probe (App. A.1: frozen encoder, BatchNorm
without affine + linear on the cls token, LARS; vit_mini_linprobe) on the 200 labels, crops 80-100%, batch 64,
40 epochs = 120 steps, blr 400 (LARS moves a weight by lr x 0.001 of its norm per step: MAE's probe takes ~7,000
steps at lr 6.4, ours 120). No kNN: on `atoms` it read 10-13% for every encoder (chance 10%).
The teacher: 4 epochs with the pool's labels from MAE's step-0 init (seed 0), batch 64, blr 4e-3, cls token.

  1a  MAE (mask 0.75) vs MAE's own encoder at step 0 (same network, init and positions; nothing learned), both
      fine-tuned: FT (MAE §4). 1b the same two by LP (MAE Table 1, LIN). 1c (new): FT after 20 of 40 epochs.
      One MAE run per seed serves studies 1, 2 and 3: 4 epochs x 10,000 images at MaskDistill's batch (64) and
      warmup (0.5 epoch), so that study 3 compares it with MaskDistill at the same budget.
  2   mask 0.75 vs 0.25 at equal pre-training time (0.25 encodes 3x the tokens and its step costs ~1.9x, so it
      gets 3 epochs to 0.75's 4: 2.1 rounded up in its favour): LP, as MAE Fig. 5 whose large effect is in its
      linear-probe panel (its fine-tuning panel is flat from 40 to 80%).
  3   MaskDistill from the teacher vs MAE's pixel target, same student size, images, epochs (4 x 10,000) and
      batch: 3a FT, 3b LP (MaskDistill Table 6: the teacher decides).
  4   FT-CLIP's recipe on the strong encoder (the teacher): layer decay 0.6 and warmup 20% of the epochs
      (FT-CLIP Table 10, B/16: 10 of 50; here 6 of 30). 4a blr 8e-3 vs x 8 (Table 2 spans 50x), the large lr
      with 5 seeds: with a 1-epoch warmup it landed anywhere in 32-56% (bimodal over seeds and CPUs), with
      FT-CLIP's warmup in 55.6-60.4; 4b EMA vs raw weights (Table 3; the same runs); 4c layer decay 0.6 vs 1.0
      (Tables 4-5); 4d no mixup vs mixup 0.8 + cutmix 1.0 (Table 6): FT.
  5   MaskDistill's Smooth-l1 + LayerNorm target vs MSE / cosine without norm (Table 8) and vs Smooth-l1
      without LN: a variant in the mode's `md5` is distilled at study 3's budget and fine-tuned (its default row
      is study 3's MaskDistill); the others are not measured (a student that has learned something costs 5.3
      CPU-minutes: a row of 3 seeds with its fine-tunings 18.6, which the 40 minutes do not hold), and the
      results say so, beside the effect a row could detect (3 x the std of the default row).
  Mechanisms (measured, never verdicts): MAE's speed-up of the visible-only encoder (the time ratio, Table 2),
  and how much of the target's energy, Smooth-l1 loss and gradient the 5% largest-variance channels carry with
  and without LayerNorm (why Eq. 3 normalizes).

Verdicts (each claim oriented so that the paper says effect > 0): effect = treatment mean - baseline mean,
std = the two rows' pooled seed std, both rows >= 3 seeds. "reproduces": effect >= 3 x std; "contradicts":
effect <= -3 x std; "inconclusive" otherwise. Beside each, the smallest effect this run could detect (3 x std)
and the paper's own effect. Outputs in --out DIR: results.json (every seed's number, the verdicts, the machine,
the mechanisms, each job's seconds), results.md, curves.png, bars.png. Jobs run on 2 worker processes of one
thread each (a job starts when its inputs exist).

Run:  python experiments/laptop.py                      # the full study (-> experiments/), <= 40 min on 2 cores
      python experiments/laptop.py --quick --out /tmp/q # fewer images and epochs, 1 seed: the pipeline (< 5 min)
      python experiments/laptop.py --toy --out /tmp/t   # test-sized models (seconds); what the test runs
      python experiments/laptop.py --readme experiments/README.md   # its results block from results.json
Runs (checkpoints, metrics.jsonl) land in --runs_dir (default runs/laptop/<mode>, emptied first).
"""
import argparse
import concurrent.futures as cf
import datetime
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import sys
import textwrap
import time
from argparse import Namespace
from dataclasses import replace

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import data  # noqa: E402
import engine  # noqa: E402
import finetune  # noqa: E402
import mae  # noqa: E402
import maskdistill  # noqa: E402
import synthetic  # noqa: E402

# pre_epochs: MAE 0.75 (studies 1-3) and MaskDistill (studies 3, 5), at MaskDistill's batch and warmup; r25_epochs:
# mask 0.25 at equal time (study 2); teacher_epochs: supervised on `pool`; md5: the study-5 variants distilled (the
# others are not measured); ft_epochs (ft_short: "faster") and lp_epochs on `fraction` of the labels; study 4:
# ft4_epochs, layer decay ft4_ld, warmup ft4_warmup x ft4_epochs, the large lr ft4_lr_x x ft_blr; seeds for every
# row, seeds_lr for the unstable large-lr row (4a).
MODES = {
    "full": dict(data="atoms", pool="atoms_pool", mae="mae_vit_mini", vit="vit_mini", lp="vit_mini_linprobe",
                 md="maskdistill_vit_mini", md_extra=[], num_train=10000, num_val=5000, fraction=0.02,
                 pre_epochs=4, r25_epochs=3, teacher_epochs=4, md5=[], ft_epochs=40, ft4_epochs=30, ft_short=20,
                 eval_every=20, ft_batch=32, ft_blr=8e-3, lp_epochs=40, lp_blr=400.0, lp_batch=64, ft4_ld=0.6,
                 ft4_warmup=0.2, ft4_lr_x=8, teacher_blr=4e-3, seeds=[0, 1, 2], seeds_lr=[0, 1, 2, 3, 4]),
    "quick": dict(data="atoms", pool="atoms_pool", mae="mae_vit_mini", vit="vit_mini", lp="vit_mini_linprobe",
                  md="maskdistill_vit_mini", md_extra=[], num_train=1000, num_val=500, fraction=0.1,
                  pre_epochs=1, r25_epochs=1, teacher_epochs=1, md5=[], ft_epochs=4, ft4_epochs=2, ft_short=2,
                  eval_every=2, ft_batch=32, ft_blr=8e-3, lp_epochs=4, lp_blr=400.0, lp_batch=64, ft4_ld=0.6,
                  ft4_warmup=0.2, ft4_lr_x=8, teacher_blr=4e-3, seeds=[0], seeds_lr=[0]),
    # the test's: vit_test-sized models, a few dozen images, 3 seeds (5 for 4a's large lr), one study-5 variant
    # distilled (both kinds of study-5 claim): it checks the plumbing, not the claims
    "toy": dict(data="atoms", pool="atoms_pool", mae="mae_vit_test", vit="vit_test", lp="vit_test_linprobe",
                md="maskdistill_vit_test", md_extra=["--student", "vit_test"], num_train=64, num_val=32,
                fraction=0.25, pre_epochs=1, r25_epochs=1, teacher_epochs=1, md5=["Smooth-l1, no norm"],
                ft_epochs=2, ft4_epochs=2, ft_short=1, eval_every=1, ft_batch=8, ft_blr=1e-3, lp_epochs=2,
                lp_blr=0.1, lp_batch=8, ft4_ld=0.6, ft4_warmup=0.2, ft4_lr_x=8, teacher_blr=1e-3, seeds=[0, 1, 2],
                seeds_lr=[0, 1, 2, 3, 4]),
}
CROP = ["--crop_scale", "0.8", "1.0"]   # fine-tuning crops: a 32 px object cut to a third of its area loses its class
DEFAULT = "Smooth-l1, LN target (default)"
MD5 = {DEFAULT: ["--loss", "smooth_l1", "--target_norm", "ln"],
       "MSE, no norm (Table 8)": ["--loss", "mse", "--target_norm", "none"],
       "cosine, no norm (Table 8)": ["--loss", "cosine", "--target_norm", "none"],
       "Smooth-l1, no norm": ["--loss", "smooth_l1", "--target_norm", "none"]}


def ema_decay_for(total_steps):
    """FT-CLIP's EMA 0.9998 averages over 1 / (1 - 0.9998) = 5000 steps, 16% of its 50 x 625 = 31,250 steps (Table 10).
    Our runs have a few hundred steps, where 0.9998 would leave the average at the pre-trained weights; keep the 16%."""
    return 1.0 - 1.0 / max(2.0, 0.16 * total_steps)


# ----------------------------------------------------------------------------- the jobs (each runs in a worker)

def save_trunk(model, path, source):
    """A classifier's trunk as an encoder.pt (its head dropped: a teacher's head knows the pool's classes)."""
    model.head = torch.nn.Identity()
    engine.save_encoder(path, model, replace(model.cfg, num_classes=0), source,
                        Namespace(student_mean_std="imagenet"))


def mechanisms(m, runs_dir):
    """The measured mechanisms behind two claims (never verdicts): MAE's wall-clock speed-up of the visible-only
    encoder over the encoder with mask tokens (Table 2's claim), and how the teacher's raw target distributes its
    energy, Smooth-l1 loss and gradient over channels with and without LayerNorm (Eq. 3's reason)."""
    sys.path.insert(0, HERE)
    from bench import step_times
    torch.manual_seed(0)
    t, _ = step_times(m["mae"], 64, 3)
    out = [dict(name="MAE: training-step time, encoder with [M] / visible-only (Table 2: 2.8-4.1x for ViT-L/H)",
                value=round(t["w/ [M]"] / t["visible-only"], 2))]
    teacher = maskdistill.build_teacher(os.path.join(runs_dir, "teacher", "encoder.pt"), "", (8, 8) if
                                        m["vit"] == "vit_mini" else (4, 4), target="raw")
    tf = data.build_transform("eval", 32, mean=None, crop_pct=1.0)
    ds = data.build_dataset(m["data"], "train", tf, num_train=min(512, m["num_train"]), img_size=32)
    imgs = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        raw = teacher(imgs).flatten(0, 1)                                              # (M, Dt) tokens
    for norm in ("none", "ln"):
        t = maskdistill.normalize_target(raw, norm)
        top = t.var(0).argsort(descending=True)[:max(1, round(0.05 * t.shape[1]))]   # 5% largest-variance
        pred = t.mean(0, keepdim=True).expand_as(t).clone().requires_grad_(True)   # the best constant predictor
        loss = F.smooth_l1_loss(pred, t, reduction="none")                         # (M, Dt)
        loss.sum().backward()
        share = lambda x: round(100 * (x[:, top].sum() / x.sum()).item(), 1)       # noqa: E731
        c = (t - t.mean(0)) ** 2
        label = "without norm" if norm == "none" else "with LayerNorm (Eq. 3)"
        out.append(dict(name=f"target {label}: % of the energy / Smooth-l1 loss / gradient norm^2 in the 5% "
                             f"largest-variance channels", value=[share(c), share(loss.detach()),
                                                                 share(pred.grad ** 2)]))
    return out


def run_job(job):
    """One pre-training, fine-tuning or linear probe (or the mechanisms); returns its numbers."""
    m, out, t0, c0 = job["m"], job["out"], time.perf_counter(), time.process_time()
    res = {}
    if job["kind"] == "mae":
        mae.main(job["argv"] + ["--output_dir", out])
    elif job["kind"] == "md":
        maskdistill.main(job["argv"] + ["--output_dir", out])
    elif job["kind"] in ("ft", "lp", "teacher"):
        argv = job["argv"]
        if job["kind"] == "teacher":    # from MAE's encoder at step 0 (seed 0), like every student here
            engine.seed_everything(job["seed"], 0)
            model = mae.create_mae(m["mae"])
            os.makedirs(out, exist_ok=True)
            engine.save_encoder(os.path.join(out, "init.pt"), model.encoder, model.encoder.cfg, "mae.py step 0",
                                Namespace(student_mean_std="imagenet"))
            argv = argv + ["--init", os.path.join(out, "init.pt")]
        model = finetune.main(argv + ["--output_dir", out])
        s = json.load(open(os.path.join(out, "summary.json")))
        evals = {r["epoch"]: r["val_acc1"] for r in read_jsonl(out) if "val_acc1" in r}
        res.update(ft=s["last_acc1"], ft_ema=s["last_acc1_ema"], curve=evals)
        if job["kind"] == "teacher":
            save_trunk(model, os.path.join(out, "encoder.pt"), "finetune.py on atoms_pool (supervised teacher)")
    elif job["kind"] == "mech":
        res["mechanisms"] = mechanisms(m, os.path.dirname(out))
    if job["kind"] in ("mae", "md"):
        res["loss"] = [r["loss"] for r in read_jsonl(out) if "loss" in r][-1]
    return dict(res, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)


def read_jsonl(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def plan(m, runs_dir):
    """Every run of the study as a job: kind, argv, the jobs it needs first (deps); listed in priority order (the
    longest chains first), a job starts as soon as a worker is free and its deps are done."""
    jobs, common = [], ["--num_workers", "0", "--log_every", "5", "--save_every", "1000"]
    n_data = ["--data", m["data"], "--num_train", str(m["num_train"]), "--num_val", str(m["num_val"])]

    def add(tag, kind, argv, seed, deps=()):
        jobs.append(dict(tag=tag, kind=kind, argv=[*argv, "--seed", str(seed), *common], seed=seed, deps=list(deps),
                         out=os.path.join(runs_dir, tag), m=m))

    def init(tag, name="encoder.pt"):
        return ["--init", os.path.join(runs_dir, tag, name)]

    def last_eval(epochs):   # a run whose curve no claim reads evaluates once, at the end (same trajectory)
        return ["--eval_every", str(epochs)]

    labels = ["--train_fraction", str(m["fraction"]), "--label_seed", "0", "--eval_every", str(m["eval_every"])]
    ft = ["--model", m["vit"], *n_data, *labels, "--epochs", str(m["ft_epochs"]), "--batch_size", str(m["ft_batch"]),
          "--blr", str(m["ft_blr"]), *CROP, "--ema_decay", "0"]
    steps = m["ft4_epochs"] * (round(m["fraction"] * m["num_train"]) // m["ft_batch"])     # study 4's runs
    recipe = [*ft, "--ema_decay", f"{ema_decay_for(steps):.4f}"]   # the EMA tracked beside the raw weights (4b)
    lp = ["--model", m["lp"], *n_data, *labels, "--epochs", str(m["lp_epochs"]), "--batch_size", str(m["lp_batch"]),
          "--blr", str(m["lp_blr"]), *CROP, "--eval_every", str(m["lp_epochs"])]     # one eval, at the end
    md_preset = maskdistill.PRESETS[m["md"]]     # MAE's runs take MaskDistill's batch and warmup: the same budget
    mae_a = ["--model", m["mae"], *n_data, "--batch_size", str(md_preset["batch_size"]), "--warmup_epochs",
             str(md_preset["warmup_epochs"])]
    md = ["--model", m["md"], *n_data, "--epochs", str(m["pre_epochs"]), "--target", "raw", *m["md_extra"],
          "--teacher", os.path.join(runs_dir, "teacher", "encoder.pt")]      # a ViT teacher has no CLIP projection
    S = m["seeds"]
    # the teacher first (studies 3-5 wait for it): MAE's step-0 encoder (seed 0) trained with labels on the pool
    # (other classes, other images); its trunk is the teacher and study 4's strong encoder
    add("teacher", "teacher", ["--model", m["vit"], "--data", m["pool"], "--num_train", str(m["num_train"]),
                               "--num_val", str(m["num_val"]), "--epochs", str(m["teacher_epochs"]), "--batch_size",
                               "64", "--blr", str(m["teacher_blr"]), *CROP, "--global_pool", "token",
                               "--ema_decay", "0", "--eval_every", str(m["teacher_epochs"])], 0)
    for s in S:   # MaskDistill <- the teacher (study 3; study 5's default row) and its study-5 variants
        add(f"md_s{s}", "md", [*md, *MD5[DEFAULT]], s, ["teacher"])
        for name in m["md5"]:
            add(f"{md5_tag(name)}_s{s}", "md", [*md, *MD5[name]], s, ["teacher"])
    for s in S:   # MAE, mask 0.75, the same budget (studies 1-3), keeping its step-0 encoder (study 1's baseline);
        # mask 0.25 at equal time (study 2): it encodes 3x the tokens, so r25_epochs, rounded up in its favour
        add(f"mae_s{s}", "mae", [*mae_a, "--save_init", "--epochs", str(m["pre_epochs"]), "--mask_ratio", "0.75"], s)
        add(f"mae_r0.25_s{s}", "mae", [*mae_a, "--no-save_init", "--epochs", str(m["r25_epochs"]), "--mask_ratio",
                                       "0.25"], s)
    enc = [*init("teacher"), "--epochs", str(m["ft4_epochs"]),    # a strong encoder converges sooner
           "--layer_decay", str(m["ft4_ld"]),                     # FT-CLIP Table 10 (B/16): 0.6
           "--warmup_epochs", f"{m['ft4_warmup'] * m['ft4_epochs']:g}"]   # and its warmup, 10 of 50 epochs
    x = m["ft4_lr_x"]     # each row changes one flag of the recipe's argv: its last copy wins (argparse)
    for s in sorted(set(S) | set(m["seeds_lr"])):   # study 4 on the strong encoder
        if s in S:        # the recipe (raw weights and their EMA), no layer decay, mixup
            add(f"ft4_recipe_s{s}", "ft", [*recipe, *enc], s, ["teacher"])
        if s in m["seeds_lr"]:    # the large lr: an unstable arm (chaotic at a short warmup), more seeds
            add(f"ft4_lr_x{x}_s{s}", "ft", [*ft, *enc, "--blr", str(x * m["ft_blr"]), *last_eval(m["ft4_epochs"])],
                s, ["teacher"])
        if s in S:
            for tag, extra in [("ft4_ld1.0", ["--layer_decay", "1.0"]), ("ft4_mixup", ["--mixup", "0.8", "--cutmix",
                                                                                       "1.0"])]:
                add(f"{tag}_s{s}", "ft", [*ft, *enc, *extra, *last_eval(m["ft4_epochs"])], s, ["teacher"])
    for s in S:   # evaluations: study 1 (MAE vs its own encoder at step 0, saved by the same run), 2, 3, 5
        for tag, name in [("mae", "encoder.pt"), ("mae0", "encoder_init.pt")]:
            add(f"ft_{tag}_s{s}", "ft", [*ft, *init(f"mae_s{s}", name)], s, [f"mae_s{s}"])
            add(f"lp_{tag}_s{s}", "lp", [*lp, *init(f"mae_s{s}", name)], s, [f"mae_s{s}"])
        add(f"lp_mae_r0.25_s{s}", "lp", [*lp, *init(f"mae_r0.25_s{s}")], s, [f"mae_r0.25_s{s}"])
        add(f"ft_md_s{s}", "ft", [*ft, *init(f"md_s{s}"), *last_eval(m["ft_epochs"])], s, [f"md_s{s}"])
        add(f"lp_md_s{s}", "lp", [*lp, *init(f"md_s{s}")], s, [f"md_s{s}"])
        for name in m["md5"]:
            tag = f"{md5_tag(name)}_s{s}"
            add(f"ft_{tag}", "ft", [*ft, *init(tag), *last_eval(m["ft_epochs"])], s, [tag])
    add("mechanisms", "mech", [], 0, ["teacher"])
    return jobs


def md5_tag(name):
    """'MSE, no norm (Table 8)' -> 'md5_mse_none' (the runs' folder names)."""
    return f"md5_{MD5[name][1]}_{MD5[name][-1]}"


def studies(m, res):
    """The claims, each a baseline, a treatment and optional ablations: {setting, role, values (one per seed)}, the
    paper's effect beside it; verdicts computed."""
    S = m["seeds"]

    def row(setting, role, tag, key, seeds=S):
        return dict(setting=setting, role=role, values=[round(res[f"{tag}_s{s}"][key], 2) for s in seeds])
    n_lab = round(m["fraction"] * m["num_train"])
    batch = maskdistill.PRESETS[m["md"]]["batch_size"]
    pre = f"{m['pre_epochs']} ep x {m['num_train']} img, batch {batch}"
    ft, lp = f"fine-tuned {m['ft_epochs']} ep on {n_lab} labels", f"linear probe on {n_lab} labels"
    short = f"after {m['ft_short']} of {m['ft_epochs']} fine-tuning epochs"
    step0 = "MAE's encoder at step 0 (same network, init and positions; nothing learned)"
    teacher = f"the teacher ({m['teacher_epochs']} ep supervised on {m['pool']}: other classes, other images)"
    for s in S:   # the accuracy after the short budget, read off the same fine-tunings' curves
        for tag in ("ft_mae", "ft_mae0"):
            res[f"{tag}_s{s}"]["ft_short"] = res[f"{tag}_s{s}"]["curve"][m["ft_short"] - 1]
    recipe = row(f"the recipe: blr {m['ft_blr']:g}, layer decay {m['ft4_ld']}, warmup "
                 f"{m['ft4_warmup'] * m['ft4_epochs']:g} ep, no mixup, raw weights", "treatment", "ft4_recipe", "ft")
    md_ft = row(f"MaskDistill <- the teacher ({pre}), {ft}", "treatment", "ft_md", "ft")
    out = [
        dict(name="1a MAE vs scratch, fine-tuning", claim=f"MAE pre-training beats the same network trained from "
             f"scratch with few labels (MAE §4): val top-1 %, {ft}", rows=[
                 row(f"from scratch: {step0}, {ft}", "baseline", "ft_mae0", "ft"),
                 row(f"MAE pre-trained ({pre}, mask 0.75), {ft}", "treatment", "ft_mae", "ft")]),
        dict(name="1b MAE vs scratch, linear probe", claim=f"frozen MAE features beat frozen step-0 features (MAE "
             f"Table 1, LIN): top-1 % of MAE's {lp}", rows=[
                 row(f"from scratch: {step0}, {lp}", "baseline", "lp_mae0", "ft"),
                 row(f"MAE pre-trained ({pre}, mask 0.75), {lp}", "treatment", "lp_mae", "ft")]),
        dict(name="1c MAE makes fine-tuning faster (new)", claim=f"MAE's encoder fine-tunes faster than the "
             f"step-0 one (MAE §4, Fig. 7's point): val top-1 % {short}", rows=[
                 row(f"from scratch: {step0}, {short}", "baseline", "ft_mae0", "ft_short"),
                 row(f"MAE pre-trained ({pre}), {short}", "treatment", "ft_mae", "ft_short")]),
        dict(name="2 mask ratio", claim=f"mask ratio 0.75 beats 0.25 (MAE Fig. 5, its linear-probe panel) at equal "
             f"pre-training time (0.25 encodes 3x the tokens, so it gets {m['r25_epochs']} epochs to 0.75's "
             f"{m['pre_epochs']}, rounded up in its favour): top-1 % of MAE's {lp}", rows=[
                 row(f"MAE mask 0.25 ({m['r25_epochs']} ep, batch {batch}), {lp}", "baseline", "lp_mae_r0.25", "ft"),
                 row(f"MAE mask 0.75 ({pre}), {lp}", "treatment", "lp_mae", "ft")]),
        dict(name="3a teacher, fine-tuning", claim=f"distilling a semantic teacher's features beats reconstructing "
             f"pixels at the same student size, images, epochs and batch (MaskDistill Table 6; {teacher}): val "
             f"top-1 %, {ft}", rows=[
                 row(f"MAE pixels ({pre}, mask 0.75), {ft}", "baseline", "ft_mae", "ft"), md_ft,
                 dict(setting="the teacher itself, on its own pool's val split (1 run)", role="ablation",
                      values=[round(res["teacher"]["ft"], 2)])]),
        dict(name="3b teacher, linear probe", claim=f"the same comparison on frozen features: top-1 % of MAE's {lp}",
             rows=[row(f"MAE pixels ({pre}), {lp}", "baseline", "lp_mae", "ft"),
                   row(f"MaskDistill <- the teacher ({pre}), {lp}", "treatment", "lp_md", "ft")]),
        dict(name="4a lr", claim=f"a small fine-tuning lr beats a large one on a strong encoder (FT-CLIP Table 2; "
             f"{teacher}, fine-tuned {m['ft4_epochs']} ep on {n_lab} labels): val top-1 %", rows=[
                 row(f"blr {m['ft4_lr_x'] * m['ft_blr']:g} (x {m['ft4_lr_x']}; an unstable arm: "
                     f"{len(m['seeds_lr'])} seeds)", "baseline", f"ft4_lr_x{m['ft4_lr_x']}", "ft", m["seeds_lr"]),
                 recipe]),
        dict(name="4b EMA", claim="the EMA of the weights beats the raw weights (FT-CLIP Table 3; the same runs, "
             "both evaluated): val top-1 %", rows=[
                 dict(recipe, role="baseline"),
                 row("EMA (horizon 16% of the run, FT-CLIP's 0.9998 scaled)", "treatment", "ft4_recipe", "ft_ema")]),
        dict(name="4c layer decay", claim="layer-wise lr decay beats none on a strong encoder (FT-CLIP Tables 4-5): "
             "val top-1 %", rows=[row("layer decay 1.0 (none)", "baseline", "ft4_ld1.0", "ft"), recipe]),
        dict(name="4d mixup", claim="no mixup / cutmix beats mixup 0.8 + cutmix 1.0 (FT-CLIP Table 6): val top-1 %",
             rows=[row("mixup 0.8 + cutmix 1.0", "baseline", "ft4_mixup", "ft"), recipe]),
    ]
    for name in list(MD5)[1:]:
        claim = (f"MaskDistill's Smooth-l1 + LN target beats {name.split(' (')[0]} (MaskDistill Table 8; study 3's "
                 f"teacher and budget, {pre}): val top-1 %, {ft}")
        default = dict(md_ft, setting=f"{DEFAULT}: study 3's MaskDistill, {ft}")
        rows = ([row(f"{name}, {ft}", "baseline", f"ft_{md5_tag(name)}", "ft"), default] if name in m["md5"] else
                [default])      # not distilled: the claim is not measured (the verdict says so)
        out.append(dict(name=f"5 Smooth-l1 + LN vs {name.split(' (')[0]}", claim=claim, rows=rows))
    return [verdict(s) for s in out]


def memo(make):
    """The built-in data is a pure function of its arguments (seeded numpy): a worker draws each set once and
    hands every later job the same read-only arrays (each job otherwise redraws 15,000 images: ~3.4 s)."""
    cache = {}

    def cached(num_images, img_size=32, seed=0, **knobs):
        key = (num_images, img_size, seed, tuple(sorted(knobs.items())))
        if key not in cache:
            cache[key] = make(num_images, img_size, seed, **knobs)
            for a in cache[key]:
                a.setflags(write=False)
        return cache[key]
    return cached


def worker_init():
    """A worker process: one thread (2 workers on 2 cores), the built-in data memoized."""
    torch.set_num_threads(1)
    for variant in synthetic.SHAPES_VARIANTS.values():
        if "make" in variant:
            variant["make"] = memo(variant["make"])


def run_jobs(jobs, workers):
    """Run the jobs (each once its deps are done) on `workers` processes of one thread each (spawned: no forked
    OpenMP state), or in this process for workers <= 1. Returns {tag: result}."""
    results = {}
    if workers <= 1:
        for i, j in enumerate(jobs):
            results[j["tag"]] = run_job(j)
            print(f"[laptop] {j['tag']} done in {results[j['tag']]['seconds']:.0f} s; {len(jobs) - i - 1} jobs left",
                  flush=True)
        return results
    pending, running = list(jobs), {}
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                initializer=worker_init) as pool:
        while pending or running:
            for j in [j for j in pending if all(d in results for d in j["deps"])][:workers - len(running)]:
                running[pool.submit(run_job, j)] = j
                pending.remove(j)
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in done:
                j = running.pop(f)
                results[j["tag"]] = f.result()
                print(f"[laptop] {j['tag']} done in {results[j['tag']]['seconds']:.0f} s; {len(pending)} jobs left",
                      flush=True)
    return results


# ----------------------------------------------------------------------------- studies and verdicts

def pooled_std(a, b):
    """sqrt of the pooled (n-1 weighted) variance of two rows; 0 when neither has two seeds."""
    dof = len(a) + len(b) - 2
    if dof <= 0:
        return 0.0
    ss = sum((x - statistics.mean(r)) ** 2 for r in (a, b) if len(r) > 1 for x in r)
    return math.sqrt(ss / dof)


def verdict(study):
    """effect = treatment - baseline means, std = their pooled seed std, detectable = 3 x std (the smallest effect
    this run could call). With >= 3 seeds in each row: 'reproduces' when effect >= detectable (and > 0),
    'contradicts' when effect <= -detectable (and < 0), else 'inconclusive'. A claim without a baseline row was not
    run: 'not measured', its detectable effect estimated from the treatment row's seeds alone."""
    base = next((r["values"] for r in study["rows"] if r["role"] == "baseline"), None)
    treat = next(r["values"] for r in study["rows"] if r["role"] == "treatment")
    paper = paper_effect(study["name"])
    if base is None:
        std = statistics.stdev(treat) if len(treat) > 1 else 0.0
        return dict(study, verdict="not measured", effect=None, std=None, detectable=round(3 * std, 3), paper=paper)
    effect, std = statistics.mean(treat) - statistics.mean(base), pooled_std(base, treat)
    seeds = min(len(base), len(treat)) >= 3
    v = ("reproduces" if seeds and effect > 0 and effect >= 3 * std else
         "contradicts" if seeds and effect < 0 and effect <= -3 * std else "inconclusive")
    return dict(study, verdict=v, effect=round(effect, 3), std=round(std, 3), detectable=round(3 * std, 3),
                paper=paper)


# ----------------------------------------------------------------------------- report

def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


# Each claim's published effect (points on the paper's benchmark, oriented as the claim) and where it is printed;
# "n/a" where the paper has no such row. Shown beside the smallest effect this run could detect (3 x its pooled
# std): a paper's +0.3 below a lab's 1.8 is a claim the lab cannot see, not one it refutes.
PAPER_EFFECT = {
    "1a ": ("+2.4", "MAE §4: ViT-L from scratch 82.5, MAE 84.9"),
    "2 ": ("up to +18.9", "MAE Fig. 5: linear probe 54.6 to 73.5 over its ratios (0.25 vs 0.75 only plotted); "
                          "fine-tuning within ~1 at 40-80%"),
    "3a ": ("+1.4", "MaskDistill Table 6: CLIP teacher 85.0; MAE's pixels 83.6 (#9's teacher)"),
    "4a ": ("+2.0", "FT-CLIP Table 2: lr 3e-5 84.3, 1e-3 82.3"),
    "4b ": ("+0.3", "FT-CLIP Table 3 at lr 3e-5; +0.1 at 2e-5, +0.9 at a too-large 1e-4"),
    "4c ": ("+0.7", "FT-CLIP Table 5: decay 0.6 85.3; the no-decay EMA baseline 84.6"),
    "4d ": ("+0.4", "FT-CLIP Table 6: none 85.7, 0.8 / 1.0 85.3"),
    "5 Smooth-l1 + LN vs MSE": ("+0.4", "MaskDistill Table 8, CLIP teacher: 85.0, 84.6"),
    "5 Smooth-l1 + LN vs cosine": ("+0.1", "MaskDistill Table 8, CLIP teacher: 85.0, 84.9"),
    "5 Smooth-l1 + LN vs Smooth-l1": ("n/a", "not in Table 8; Smooth-l1 + BN: 84.9"),
}


def paper_effect(name):
    """{'effect': '+0.3', 'where': ...} for a claim the paper prints, else None (1b, 1c, 3b)."""
    key = next((k for k in PAPER_EFFECT if name.startswith(k)), None)
    return None if key is None else dict(effect=PAPER_EFFECT[key][0], where=PAPER_EFFECT[key][1])


def points(text):
    """'+0.3' -> 0.3, 'up to +18.9' -> 18.9, 'n/a' -> None."""
    found = re.search(r"[+-]?\d+(\.\d+)?", text or "")
    return float(found.group()) if found else None


def beside_paper(st):
    """The sentence a student reads: the paper's effect beside the smallest effect this run could detect."""
    p = st["paper"]
    if p is None:
        return f"this run could detect {st['detectable']:.1f} points (3 x std); the paper prints no such number"
    pts = points(p["effect"])
    if pts is None:
        return f"this run could detect {st['detectable']:.1f} points (3 x std); the paper: {p['where']}"
    where = "below" if pts < st["detectable"] else "above"
    return f"the paper's {p['effect']} is {where} the {st['detectable']:.1f} this run could detect ({p['where']})"


def cell(values):
    mu, sd = mean_std(values)
    n = len(values)
    return f"{mu:.1f} ± {sd:.1f}" + ("" if n == 3 else f" ({n} seed{'s' * (n != 1)})")


def verdict_table(report):
    """Markdown: each claim's rows, effect, the smallest effect this run could detect, the paper's, the verdict."""
    lines = ["| claim | baseline | treatment | effect | detectable (3 x std) | the paper's effect | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for st in report["studies"]:
        rows = {r["role"]: r["values"] for r in st["rows"]}
        base = cell(rows["baseline"]) if "baseline" in rows else "not run"
        effect = "" if st["effect"] is None else f"{st['effect']:+.1f}"
        if st["effect"] is not None and st["std"] > 0:
            effect += f" ({st['effect'] / st['std']:.2f} x std)"
        det = f"{st['detectable']:.1f}" if st["effect"] is not None else f"~{st['detectable']:.1f} (estimated)"
        paper = st["paper"]["effect"] if st["paper"] else "n/a"
        v = f"**{st['verdict']}**" if st["verdict"] == "reproduces" else st["verdict"]
        lines.append(f"| {st['name']} | {base} | {cell(rows['treatment'])} | {effect} | {det} | {paper} | {v} |")
    return "\n".join(lines)


def count_line(report):
    """'**7 of the 12 claims reproduce** (...); new claim 1c: reproduces.'"""
    original = [st for st in report["studies"] if "(new)" not in st["name"]]
    n = {v: sum(st["verdict"] == v for st in original) for v in VERDICTS}
    others = ", ".join(f"{n[v]} {v}" for v in VERDICTS[1:] if n[v])
    return (f"**{n['reproduces']} of the {len(original)} claims reproduce**" + (f" ({others})" if others else "")
            + "".join(f"; new claim {st['name'].split()[0]}: {st['verdict']}" for st in report["studies"]
                      if "(new)" in st["name"]) + ".")


VERDICTS = ("reproduces", "contradicts", "inconclusive", "not measured")


def verdict_line(st):
    """One study's computed verdict as a line of results.md (2 decimals on the ratio: 2.96 x is not 3 x)."""
    if st["effect"] is None:
        return (f"- **{st['name']}**: not measured: no variant was distilled at this budget; with the default row's "
                f"seed spread a row could detect about {st['detectable']:.2f} points; the paper's effect "
                f"{st['paper']['effect']} ({st['paper']['where']}). Claim: {st['claim']}.")
    ratio = f"{st['effect'] / st['std']:.2f} x" if st["std"] > 0 else "n/a x"
    return (f"- **{st['name']}**: {st['verdict']}: effect {st['effect']:+.2f} points, pooled std {st['std']:.2f} "
            f"({ratio} the std); {beside_paper(st)}. Claim: {st['claim']}.")


def cpu_name():
    """The CPU as results.md names it: the model (/proc/cpuinfo), torch's vector ISA, cores, torch version."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return (f"{model} ({platform.machine()}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}), "
            f"{os.cpu_count()} cores, torch {torch.__version__}")


def command(mode):
    return "python experiments/laptop.py" + ("" if mode == "full" else f" --{mode}")


def write_results(out, name, report, runs, m, mode):
    n_lab = round(m["fraction"] * m["num_train"])
    lines = [f"# Laptop-scale study ({mode} mode; {report['date']})", "",
             f"Machine: {report['machine']}.", "",
             f"Regenerate: `{command(mode)}` (took {report['minutes']:.1f} min here on {report['workers']} worker "
             f"process(es) of one thread; the runs' CPU time adds up to {report['cpu_minutes']:.1f} min). Data: "
             f"`{m['data']}`, 32 px, 10 classes, {m['num_train']} train images (pre-training, unlabelled) / "
             f"{m['num_val']} val images; every evaluation uses the same {n_lab} labels ({m['fraction']:.0%}, one "
             f"class-stratified draw). FT: the `{m['vit']}` recipe, {m['ft_epochs']} epochs, batch {m['ft_batch']}, "
             f"blr {m['ft_blr']:g}, val top-1 of the last epoch; LP: `{m['lp']}` (MAE's protocol), blr "
             f"{m['lp_blr']:g}, {m['lp_epochs']} epochs. Chance is 10%. Seeds: {', '.join(map(str, m['seeds']))}; "
             f"4a's large lr: {', '.join(map(str, m['seeds_lr']))} (a seed = pre-training + fine-tuning randomness).",
             "", "Verdicts: effect = treatment mean - baseline mean, std = the pooled seed std, both rows at least 3 "
             "seeds; **reproduces** when effect >= 3 x std, **contradicts** when effect <= -3 x std, **inconclusive** "
             "otherwise. 3 x std is the smallest effect this run could detect; the paper's own effect stands beside "
             f"it. The numbers are also in [{name}.json]({name}.json).", "", count_line(report), "",
             verdict_table(report), "", "Every row, every seed:", "",
             "| study | setting | role | mean ± std | per seed |", "| --- | --- | --- | --- | --- |"]
    for st in report["studies"]:
        for r in st["rows"]:
            mu, sd = mean_std(r["values"])
            lines.append(f"| {st['name']} | {r['setting']} | {r['role']} | {mu:.1f} ± {sd:.1f} | "
                         f"{', '.join(f'{v:.1f}' for v in r['values'])} |")
    lines += ["", "Verdicts (computed):", ""]
    for st in report["studies"]:
        lines.append(verdict_line(st))
    lines += ["", "Mechanisms (measured once; never verdicts):", "", "| quantity | value |", "| --- | --- |"]
    for mech in report["mechanisms"]:
        v = mech["value"]
        lines.append(f"| {mech['name']} | {' / '.join(f'{x:g}%' for x in v) if isinstance(v, list) else f'{v:g}x'} |")
    lines += ["", "Plots: ![curves](curves.png) ![bars](bars.png)", "", "Runs (wall seconds on a worker; CPU "
              "seconds):", "", "| run | seconds | CPU s | result |", "| --- | --- | --- | --- |"]
    for tag, r in runs.items():
        val = ", ".join(f"{k} {r[k]:.3g}" if isinstance(r[k], float) else f"{k} {r[k]}"
                        for k in ("ft", "ft_ema", "loss") if r.get(k) is not None)
        lines.append(f"| {tag} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} | {val} |")
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


README_BEGIN = "<!-- results: written by `python experiments/laptop.py --readme experiments/README.md` -->"
README_END = "<!-- end of results -->"


def wrap(text, width=118):
    """A paragraph wrapped for a README, never between a number and its '±'."""
    return textwrap.fill(text.replace(" ± ", "\0±\0"), width, break_on_hyphens=False).replace("\0", " ")


def readme_block(report):
    """experiments/README.md's results section, from results.json: the run, the count, the verdict table."""
    return "\n".join([wrap(
        f"`{command(report['mode'])}` on {report['date']}: **{report['minutes']:.1f} min** wall on "
        f"{report['workers']} worker process{'es' * (report['workers'] != 1)} of one thread "
        f"({report['cpu_minutes']:.1f} CPU-minutes), {report['machine']}. Mean ± std over seeds "
        f"{', '.join(map(str, report['seeds']))} (4a's large lr: {', '.join(map(str, report['seeds_lr']))}), top-1 % "
        "on the val images, chance 10%; every seed's number in `results.md`."), "",
        wrap(count_line(report)), "", verdict_table(report)])


def refresh_readme(path, report):
    """Replace the text between README_BEGIN and README_END in `path` with readme_block(report)."""
    text = open(path).read()
    a, b = text.index(README_BEGIN) + len(README_BEGIN), text.index(README_END)
    with open(path, "w") as f:
        f.write(text[:a] + "\n" + readme_block(report) + "\n" + text[b:])


def front_section(report):
    """The lab's section of the front README (README.md, "What the labs show"), from results.json: one line per
    claim, its effect beside what the lab could detect, the paper's effect, the verdict."""
    text = (f"`python experiments/laptop.py` ({report['minutes']:.1f} min, 2 idle cores, {report['date']}): twelve "
            "claims of the papers and one new one on `atoms`, 200 labels, 3 seeds (5 for an unstable row). "
            "**Reproduces**: effect ≥ 3 × the pooled seed std; **contradicts**: ≤ −3 ×; else **inconclusive**. "
            f"In parentheses: that 3 × std, the smallest effect the lab sees. {count_line(report)} Design, "
            "probes: [experiments/README.md](experiments/README.md).")
    lines = [wrap(text, 114), "", "| claim | effect (can see) | paper | verdict |", "| --- | --- | --- | --- |"]
    for st in report["studies"]:
        name = st["name"].replace(", fine-tuning", " (FT)").replace(", linear probe", " (LP)")
        eff = "not run" if st["effect"] is None else f"{st['effect']:+.1f} ({st['detectable']:.1f})"
        lines.append(f"| {name} | {eff} | {st['paper']['effect'] if st['paper'] else 'n/a'} | {st['verdict']} |")
    return "\n".join(lines)


COLORS = {"baseline": (120, 120, 120), "treatment": (31, 119, 180), "ablation": (255, 127, 14)}
VERDICT_COLORS = {"reproduces": (0, 110, 0), "contradicts": (170, 0, 0), "inconclusive": (110, 110, 110),
                  "not measured": (110, 110, 110)}


def font(size):
    try:
        return ImageFont.load_default(size=size)          # Pillow >= 10.1 (FreeType): a readable size
    except TypeError:
        return ImageFont.load_default()


def plot_curves(path, series, title, chance=10.0):
    """Val top-1 % per fine-tuning epoch: one thin line per seed, the mean thick, a dashed chance line; PIL only.
    `series`: {name: (curves, colour)}."""
    W, H, L, B, T = 720, 440, 70, 60, 40                 # size, left / bottom / top margins
    img, f = Image.new("RGB", (W, H), "white"), font(14)
    d = ImageDraw.Draw(img)
    epochs = 1 + max(e for cs, _ in series.values() for c in cs for e in c)        # curves: {epoch: top-1}
    top = max(20.0, max(v for cs, _ in series.values() for c in cs for v in c.values()))
    ymax = min(100, math.ceil(top / 10) * 10 + 10)             # a band on top for the legend
    xy = lambda e, v: (L + (W - L - 20) * e / max(1, epochs - 1), H - B - (H - B - T) * v / ymax)   # noqa: E731
    d.text((L, 10), title, fill="black", font=f)
    for v in range(0, ymax + 1, 10):
        d.line([xy(0, v), xy(epochs - 1, v)], fill=(230, 230, 230))
        d.text((L - 40, xy(0, v)[1] - 8), f"{v}%", fill="black", font=f)
    for e in sorted({e for cs, _ in series.values() for c in cs for e in c}):
        d.text((xy(e, 0)[0] - 4, H - B + 6), str(e + 1), fill="black", font=f)
    d.line([xy(0, 0), xy(epochs - 1, 0)], fill="black")
    d.line([xy(0, 0), xy(0, ymax)], fill="black")
    d.text((W // 2 - 60, H - 26), "fine-tuning epoch", fill="black", font=f)
    d.text((4, T - 24), "val top-1", fill="black", font=f)
    for x0 in range(L, W - 20, 12):                     # dashed chance line
        d.line([(x0, xy(0, chance)[1]), (min(x0 + 6, W - 20), xy(0, chance)[1])], fill=(200, 0, 0), width=2)
    d.text((W - 140, xy(0, chance)[1] - 18), f"chance {chance:g}%", fill=(200, 0, 0), font=f)
    for i, (name, (curves, col)) in enumerate(series.items()):
        for c in curves:
            d.line([xy(e, v) for e, v in sorted(c.items())], fill=tuple(255 - (255 - x) // 3 for x in col), width=1)
        mean = {e: statistics.mean(c[e] for c in curves) for e in curves[0]}
        d.line([xy(e, v) for e, v in sorted(mean.items())], fill=col, width=3)
        # legend top-left: the curves start lower on the left, and the axis has room above the highest
        label = f"{name} (thick: mean of {len(curves)} seeds)" if len(curves) > 1 else f"{name} (1 seed)"
        d.text((L + 12, T + 4 + 18 * i), label, fill=col, font=f)
    img.save(path)


def plot_bars(path, report, chance=10.0):
    """One horizontal bar per row (mean, error bar +-1 std over seeds), grouped by study, coloured by role, the
    verdict beside each study's name, a dashed chance line; PIL only."""
    rows = [(st, r) for st in report["studies"] for r in st["rows"]]
    W, rh, L, T = 1100, 22, 560, 56
    H = T + rh * (len(rows) + len(report["studies"])) + 60
    img, f, fs = Image.new("RGB", (W, H), "white"), font(14), font(12)
    d = ImageDraw.Draw(img)
    vmax = min(100, math.ceil(max(chance, max(max(r["values"]) for _, r in rows)) / 10 + 0.5) * 10)
    x = lambda v: L + (W - L - 60) * v / vmax          # noqa: E731
    d.text((10, 8), "Val top-1 %: fine-tuned or linear probe (frozen features); mean ± std over seeds",
           fill="black", font=f)
    for i, (role, col) in enumerate(COLORS.items()):
        d.rectangle([10 + 150 * i, 32, 24 + 150 * i, 44], fill=col)
        d.text((30 + 150 * i, 30), role, fill="black", font=f)
    y = T
    for st in report["studies"]:
        what = ("not measured" if st["effect"] is None else
                f"{st['verdict']} (effect {st['effect']:+.1f}, detectable {st['detectable']:.1f})")
        d.text((10, y + 3), f"{st['name']}: {what}", fill=VERDICT_COLORS[st["verdict"]], font=f)
        y += rh
        for r in st["rows"]:
            mu, sd = mean_std(r["values"])
            label = r["setting"] if len(r["setting"]) <= 86 else re.sub(r" \([^)]*\)", "", r["setting"])
            label = label if len(label) <= 86 else label[:86].rsplit(",", 1)[0] + ", ..."   # never mid-word
            d.text((24, y + 4), label, fill="black", font=fs)
            d.rectangle([x(0), y + 3, x(mu), y + rh - 3], fill=COLORS[r["role"]])
            if sd:
                d.line([x(mu - sd), y + rh // 2, x(mu + sd), y + rh // 2], fill="black", width=2)
                for v in (mu - sd, mu + sd):
                    d.line([x(v), y + 6, x(v), y + rh - 6], fill="black", width=2)
            d.text((x(mu + sd) + 6, y + 4), f"{mu:.1f}", fill="black", font=fs)
            y += rh
    for y0 in range(T, y, 10):
        d.line([(x(chance), y0), (x(chance), min(y0 + 5, y))], fill=(200, 0, 0), width=2)
    d.text((x(chance) + 4, y + 24), f"chance {chance:g}%", fill=(200, 0, 0), font=f)
    for v in range(0, vmax + 1, 10):
        d.line([(x(v), y), (x(v), y + 5)], fill="black")
        d.text((x(v) - 8, y + 6), f"{v}", fill="black", font=fs)
    d.text((x(vmax / 2) - 30, y + 40), "top-1 %", fill="black", font=f)
    img.save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="fewer images and epochs, 1 seed: under 5 minutes on 2 cores")
    g.add_argument("--toy", action="store_true", help="test-sized models and data (seconds): checks the plumbing only")
    g.add_argument("--readme", metavar="PATH", help="run nothing: rewrite the results block of PATH (experiments/"
                   "README.md) from --out's results.json, and print the front README's lab section")
    p.add_argument("--out", default=None, help="where results.json, results.md, curves.png, bars.png go (default "
                   "experiments/ for the full study, experiments/quick/ for --quick; --toy needs --out)")
    p.add_argument("--runs_dir", default=None, help="checkpoints and logs of every run (default runs/laptop/<mode>; "
                   "emptied first)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes, one thread each (1 = in this process)")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "toy" if args.toy else "full"
    if args.out is None and mode == "toy":
        raise SystemExit("--toy writes its results where you say: add --out DIR")
    out = args.out or (HERE if mode == "full" else os.path.join(HERE, "quick"))
    if args.readme:
        report = json.load(open(os.path.join(out, "results.json")))
        refresh_readme(args.readme, report)
        print(front_section(report))
        return report, None
    runs_dir = args.runs_dir or os.path.join("runs", "laptop", mode)
    shutil.rmtree(runs_dir, ignore_errors=True)           # fresh runs: the seconds measure real work
    os.makedirs(out, exist_ok=True)
    m, t0 = MODES[mode], time.perf_counter()
    runs = run_jobs(plan(m, runs_dir), args.workers)
    total = time.perf_counter() - t0
    report = dict(mode=mode, date=datetime.date.today().isoformat(), machine=cpu_name(), workers=args.workers,
                  minutes=round(total / 60, 2), cpu_minutes=round(sum(r["cpu_seconds"] for r in runs.values()) / 60, 2),
                  seeds=m["seeds"], seeds_lr=m["seeds_lr"], studies=studies(m, runs),
                  mechanisms=runs["mechanisms"]["mechanisms"],
                  jobs={t: [round(r["seconds"], 1), round(r["cpu_seconds"], 1)] for t, r in runs.items()})
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_results(out, "results", report, runs, m, mode)
    plot_curves(os.path.join(out, "curves.png"), {
        "MAE pre-trained": ([runs[f"ft_mae_s{s}"]["curve"] for s in m["seeds"]], COLORS["treatment"]),
        "MAE's encoder at step 0": ([runs[f"ft_mae0_s{s}"]["curve"] for s in m["seeds"]], COLORS["baseline"]),
        "the teacher (study 4's recipe)": ([runs[f"ft4_recipe_s{s}"]["curve"] for s in m["seeds"]],
                                           COLORS["ablation"])},
        f"Val top-1 during fine-tuning on {round(m['fraction'] * m['num_train'])} labels (studies 1 and 4)")
    plot_bars(os.path.join(out, "bars.png"), report)
    print(open(os.path.join(out, "results.md")).read())
    return report, runs


if __name__ == "__main__":
    main()
