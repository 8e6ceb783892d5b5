"""The papers' claims in miniature, on a laptop CPU, each with 3 seeds and a verdict computed from the numbers.

Everything runs through the concept files' own entry points (mae.main, maskdistill.main, finetune.main: the same code
as the command lines) with the `_mini` presets on the built-in `shapes_easy` data (32 px, 10 classes, chance 10%;
data.py: light shapes on dark backgrounds; on `shapes` a ViT from scratch stays at chance for hundreds of steps).
A seed s is one whole replication: pre-training seed s, then fine-tuning seed s, which draws its own 10% label subset
(1,000 of 10,000), head init and data order; the kNN evaluation of seed s uses the same labelled subset as its bank.
Fine-tuning ("the recipe"): the vit_mini preset (AdamW, layer decay 0.75, mean pool + fc_norm, label smoothing 0.1,
no RandAug / erasing / mixup) at batch 32, blr 8e-3, crops of 80-100% of the image, 10 epochs; val top-1 of the last one.

  1. MAE helps with few labels (MAE §4): MAE pre-training (mask 0.75, 5 epochs) then the recipe (10 epochs), vs
     MAE's own encoder at step 0 (mae.py's network, xavier init and fixed sin-cos positions, nothing learned) with the
     same recipe, so that pre-training is the only difference. Ablation (1 seed): finetune.py's own from-scratch ViT
     (vit.py's trunc-normal init, learned positions) at the lr it trains best at (blr 2e-3) and no layer decay: a
     different init, which matters more than pre-training here (README). Also frozen features: kNN (MAE Table 1
     reports FT and LIN) of the same two encoders.
  2. Mask ratio (MAE Fig. 5): 0.75 vs 0.25 at equal pre-training *time*, the budget a laptop has: 0.25 encodes 3x
     the tokens, so it gets 3 epochs to 0.75's 5 (~1.2x the seconds, rounded up in its favour). (Fig. 5 compares
     equal epochs; measured here that gives +2.6 points at 1.5x the std: README.) Metric: kNN on frozen features,
     the analogue of Fig. 5's linear-probing panel, where the paper's gap is large (its FT gap is ~1 point).
  3. Teacher matters (MaskDistill Table 6): CLIP is not available offline, so the teacher is seed 0's MAE encoder
     fine-tuned with *all 10,000 train labels* (a supervised teacher, as Table 6's DeiT; it has seen every label the
     students are later fine-tuned on). MaskDistill from it vs MAE's pixel target at the same ViT size, pre-training
     images and steps (4 epochs x 4,000 images, batch 64; MaskDistill's student runs on all 64 tokens, MAE's encoder
     on 16, so MaskDistill spends more FLOPs; at 2 epochs the students had learned nothing a random init lacks:
     README).
  4. Fine-tuning recipe (FT-CLIP Tables 2-6) on the MAE encoders of study 1: a small lr beats lr x 4 (Table 2), EMA
     beats the raw weights (Table 3; the same runs, both evaluated), layer decay beats none (Tables 4-5), no mixup
     beats mixup + cutmix (Table 6).
  5. MaskDistill's loss / normalization (Table 8), study 3's teacher at half its budget (2 epochs, for time): Smooth-l1
     + LN target (the default) vs MSE and cosine without norm (Table 8's rows) and vs Smooth-l1 without LN; kNN.

Verdict: effect = treatment mean - baseline mean (points); std = pooled seed std of the two rows; "reproduces" only
when both rows have >= 3 seeds and effect >= 3 x std (computed here). Each claim is oriented so that the paper says
effect > 0. Outputs in --out DIR: results.json (every seed's number and the verdicts), results.md, curves.png, bars.png.
Runs go to 2 worker processes of one thread each (a job starts when its inputs exist), so the full study fits the
45 minutes of 2 CPU cores.

Run:  python experiments/laptop.py                      # the full study, 3 seeds (-> experiments/)
      python experiments/laptop.py --quick --out /tmp/q # fewer images and epochs, 1 seed: the pipeline (< 5 min)
      python experiments/laptop.py --toy --out /tmp/t   # test-sized models (seconds); what the test runs
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
import shutil
import statistics
import sys
import time
from argparse import Namespace

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
from vit import ViT, ViTConfig  # noqa: E402
from weights import encoder_vit  # noqa: E402

# pre_epochs: MAE on num_train images (studies 1, 2, 4), r25_epochs: mask 0.25's (study 2, equal time); md_epochs x
# md_train: MaskDistill and the MAE pixel baseline of study 3, md5_epochs x md_train: study 5's four MaskDistill
# variants; teacher_epochs: on all labels; ft_epochs on `fraction` of the labels at batch ft_batch, blr ft_blr;
# scratch_blr: the lr finetune.py's own from-scratch ViT trains best at (study 1's 1-seed ablation).
MODES = {
    "full": dict(data="shapes_easy", mae="mae_vit_mini", vit="vit_mini", md="maskdistill_vit_mini", md_extra=[],
                 num_train=10000,
                 num_val=1000, pre_epochs=5, r25_epochs=3, md_epochs=4, md5_epochs=2, md_train=4000, teacher_epochs=2,
                 ft_epochs=10, scratch_blr=2e-3, ft_batch=32, ft_blr=8e-3, fraction=0.1, knn_k=20, seeds=[0, 1, 2]),
    "quick": dict(data="shapes_easy", mae="mae_vit_mini", vit="vit_mini", md="maskdistill_vit_mini", md_extra=[],
                  num_train=3000,
                  num_val=500, pre_epochs=2, r25_epochs=1, md_epochs=1, md5_epochs=1, md_train=1000, teacher_epochs=1,
                  ft_epochs=2, scratch_blr=2e-3, ft_batch=32, ft_blr=8e-3, fraction=0.2, knn_k=20, seeds=[0]),
    # the test's: vit_test-sized models, a few dozen images, 3 seeds: it checks the plumbing, not the claims
    "toy": dict(data="shapes_easy", mae="mae_vit_test", vit="vit_test", md="maskdistill_vit_test",
                md_extra=["--student", "vit_test"],
                num_train=64, num_val=32, pre_epochs=2, r25_epochs=1, md_epochs=1, md5_epochs=1, md_train=64,
                teacher_epochs=1, ft_epochs=2, scratch_blr=5e-4, ft_batch=8, ft_blr=1e-3, fraction=0.25, knn_k=5,
                seeds=[0, 1, 2]),
}
CROP = ["--crop_scale", "0.8", "1.0"]   # fine-tuning crops: a 32 px shape cut to a third of its area loses its class
DEFAULT = "Smooth-l1, LN target (default)"
MD5 = {DEFAULT: ["--loss", "smooth_l1", "--target_norm", "ln"],
       "MSE, no norm (Table 8)": ["--loss", "mse", "--target_norm", "none"],
       "cosine, no norm (Table 8)": ["--loss", "cosine", "--target_norm", "none"],
       "Smooth-l1, no norm": ["--loss", "smooth_l1", "--target_norm", "none"]}


def ema_decay_for(total_steps):
    """FT-CLIP's EMA 0.9998 averages over 1 / (1 - 0.9998) = 5000 steps, 16% of its 50 x 625 = 31,250 steps (Table 10).
    Our runs have ~150 steps, where 0.9998 would leave the average at the pre-trained weights; keep the same 16%."""
    return 1.0 - 1.0 / max(2.0, 0.16 * total_steps)


# ----------------------------------------------------------------------------- the jobs (each runs in a worker)

def knn_top1(encoder_path, m, seed):
    """kNN top-1 % on frozen features (mean of the final-norm patch tokens, cosine similarity, k neighbours weighted
    by exp(sim / 0.07) as DINO's kNN): memory bank = seed's labelled `fraction`, queries = the val split."""
    if encoder_path is None:                                    # a random-init encoder of the same size (seed s)
        torch.manual_seed(seed)
        vit = ViT(ViTConfig(**{**finetune.VIT_PRESETS[m["vit"]], "num_classes": 0}))
    else:
        vit = encoder_vit(engine.load_file(encoder_path), mask_token=False, drop_path=0.0, num_classes=0)
    vit.eval()
    tf = data.build_transform("eval", vit.cfg.img_size, crop_pct=1.0)
    kw = dict(num_train=m["num_train"], num_val=m["num_val"], img_size=vit.cfg.img_size)
    bank = data.subset_fraction(data.build_dataset(m["data"], "train", tf, **kw), m["fraction"], seed=seed)
    query = data.build_dataset(m["data"], "val", tf, **kw)

    @torch.no_grad()
    def feats(ds):
        return torch.cat([F.normalize(vit.forward_features(x)[:, 1:].mean(1), dim=-1)          # (B, D)
                          for x, _ in torch.utils.data.DataLoader(ds, batch_size=256)])
    sim, idx = (feats(query) @ feats(bank).T).topk(min(m["knn_k"], len(bank)), dim=1)      # (Nq, k)
    votes = torch.zeros(len(query), len(query.classes)).scatter_add_(1, torch.tensor(bank.targets)[idx], (sim / 0.07).exp())
    return 100 * (votes.argmax(1) == torch.tensor(query.targets)).float().mean().item()


def run_job(job):
    """One pre-training (then kNN) or fine-tuning run, or a kNN of a random encoder; returns its numbers."""
    m, out, t0, c0 = job["m"], job["out"], time.perf_counter(), time.process_time()
    res = {}
    if job["kind"] == "mae":
        mae.main(job["argv"] + ["--output_dir", out])
    elif job["kind"] == "mae0":     # MAE's encoder at step 0: mae.py's network, init and fixed positions, nothing learned
        engine.seed_everything(job["seed"])
        model = mae.create_mae(m["mae"])
        os.makedirs(out, exist_ok=True)
        engine.save_encoder(os.path.join(out, "encoder.pt"), model.encoder, model.encoder.cfg,
                            "mae.py at step 0 (random init)", Namespace(student_mean_std="imagenet"))
    elif job["kind"] == "md":
        maskdistill.main(job["argv"] + ["--output_dir", out])
    elif job["kind"] in ("ft", "teacher"):
        model = finetune.main(job["argv"] + ["--output_dir", out])
        s = json.load(open(os.path.join(out, "summary.json")))
        evals = [r for r in read_jsonl(out) if "val_acc1" in r]
        res.update(ft=s["last_acc1"], ft_ema=s["last_acc1_ema"], curve=[r["val_acc1"] for r in evals])
        if job["kind"] == "teacher":    # the classifier's trunk as an encoder.pt, for maskdistill.py --teacher
            engine.save_encoder(os.path.join(out, "encoder.pt"), model, model.cfg, "finetune.py (supervised teacher)",
                                Namespace(student_mean_std="imagenet"))
    if job["kind"] in ("mae", "mae0", "md", "random"):
        enc = None if job["kind"] == "random" else os.path.join(out, "encoder.pt")
        res["knn"] = knn_top1(enc, m, job["seed"])
    if job["kind"] in ("mae", "md"):
        res["loss"] = [r["loss"] for r in read_jsonl(out) if "loss" in r][-1]
    return dict(res, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0)


def read_jsonl(out):
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]


def plan(m, runs_dir):
    """Every run of the study as a job: kind, argv, the jobs it needs first (deps); listed in priority order (the
    teacher's chain first), a job starts as soon as a worker is free and its deps are done."""
    jobs, common = [], ["--num_workers", "0", "--log_every", "5", "--save_every", "1000"]
    n_data = ["--data", m["data"], "--num_train", str(m["num_train"]), "--num_val", str(m["num_val"])]

    def add(tag, kind, argv, seed, deps=()):
        jobs.append(dict(tag=tag, kind=kind, argv=[*argv, "--seed", str(seed), *common], seed=seed, deps=list(deps),
                         out=os.path.join(runs_dir, tag), m=m))

    def init(tag):
        return ["--init", os.path.join(runs_dir, tag, "encoder.pt")]

    ft = ["--model", m["vit"], *n_data, "--train_fraction", str(m["fraction"]), "--epochs", str(m["ft_epochs"]),
          "--batch_size", str(m["ft_batch"]), "--blr", str(m["ft_blr"]), *CROP]
    steps = m["ft_epochs"] * (round(m["fraction"] * m["num_train"]) // m["ft_batch"])
    recipe = [*ft, "--ema_decay", f"{ema_decay_for(steps):.4f}"]    # the EMA is tracked beside the raw weights (4b)
    mae_a = ["--model", m["mae"], *n_data]                  # each MAE job adds its own --epochs
    # study 3: MaskDistill's preset batch (64) and warmup (0.5 epoch) for both targets: the same steps and images
    budget_b = ["--data", m["data"], "--epochs", str(m["md_epochs"]), "--num_train", str(m["md_train"]),
                "--num_val", str(m["num_val"])]
    md = ["--model", m["md"], *budget_b, "--target", "raw", *m["md_extra"]]   # a ViT teacher has no CLIP projection
    md5 = [*md, "--epochs", str(m["md5_epochs"])]                             # study 5's shorter budget (last wins)
    teacher = ["--teacher", os.path.join(runs_dir, "teacher", "encoder.pt")]
    no_ema = ["--ema_decay", "0"]                       # runs whose EMA nobody reads: no second evaluation per epoch
    S = m["seeds"]
    # claim 1's baseline: MAE's own encoder at step 0 (same network, init and fixed positions; nothing learned), so
    # pre-training is the only difference; its kNN is 1b's baseline
    for s in S:
        add(f"mae0_s{s}", "mae0", [], s)
    # the longest jobs first (a worker idle at the end is lost time): MAE 0.75 seed 0 (the teacher's chain), mask 0.25
    add(f"mae_r0.75_s{S[0]}", "mae", [*mae_a, "--epochs", str(m["pre_epochs"]), "--mask_ratio", "0.75"], S[0])
    # the teacher: seed 0's MAE encoder fine-tuned on ALL train labels (strong and semantic, as CLIP is in the paper)
    add("teacher", "teacher", [*ft, "--train_fraction", "1.0", "--epochs", str(m["teacher_epochs"]), "--ema_decay", "0",
                               *init(f"mae_r0.75_s{S[0]}")], 0, [f"mae_r0.75_s{S[0]}"])
    for s in S:   # study 2 at equal time: 0.25 encodes 3x the tokens, so r25_epochs (rounded up in its favour)
        add(f"mae_r0.25_s{s}", "mae", [*mae_a, "--epochs", str(m["r25_epochs"]), "--mask_ratio", "0.25"], s)
    for s in S:
        add(f"md_sup_s{s}", "md", [*md, *teacher, *MD5[DEFAULT]], s, ["teacher"])
        add(f"ft_md_sup_s{s}", "ft", [*ft, *no_ema, *init(f"md_sup_s{s}")], s, [f"md_sup_s{s}"])
    for s in S:
        if s != S[0]:
            add(f"mae_r0.75_s{s}", "mae", [*mae_a, "--epochs", str(m["pre_epochs"]), "--mask_ratio", "0.75"], s)
        add(f"ft_mae_s{s}", "ft", [*recipe, *init(f"mae_r0.75_s{s}")], s, [f"mae_r0.75_s{s}"])
        add(f"ft_mae0_s{s}", "ft", [*ft, *no_ema, *init(f"mae0_s{s}")], s, [f"mae0_s{s}"])
    for s in S:
        add(f"mae_b_s{s}", "mae", ["--model", m["mae"], *budget_b, "--mask_ratio", "0.75", "--batch_size", "64",
                                   "--warmup_epochs", str(maskdistill.PRESETS[m["md"]]["warmup_epochs"])], s)
        add(f"ft_mae_b_s{s}", "ft", [*ft, *no_ema, *init(f"mae_b_s{s}")], s, [f"mae_b_s{s}"])
    for s in S:
        for name in MD5:
            add(f"{md5_tag(name)}_s{s}", "md", [*md5, *teacher, *MD5[name]], s, ["teacher"])
    # ablation, 1 seed: finetune.py's own from-scratch ViT (vit.py's init, learned positions) at the lr it trains best
    # at (scratch_blr, 1/4 of the recipe's: measured, README), no layer decay (it only protects pre-trained layers)
    add(f"ft_scratch_s{S[0]}", "ft", [*ft, *no_ema, "--blr", str(m["scratch_blr"]), "--layer_decay", "1.0"], S[0])
    for s in S:
        enc = init(f"mae_r0.75_s{s}")
        for tag, extra in [("ft_lr_x4", ["--blr", str(4 * m["ft_blr"])]), ("ft_ld1.0", ["--layer_decay", "1.0"]),
                           ("ft_mixup", ["--mixup", "0.8", "--cutmix", "1.0"])]:
            add(f"{tag}_s{s}", "ft", [*ft, *enc, *extra], s, [f"mae_r0.75_s{s}"])
        add(f"random_s{s}", "random", [], s)
    return jobs


def run_jobs(jobs, workers):
    """Run the jobs (each once its deps are done) on `workers` processes of one thread each (spawned: no forked
    OpenMP state), or in this process for workers <= 1. Returns {tag: result}."""
    results = {}
    if workers <= 1:
        for i, j in enumerate(jobs):
            results[j["tag"]] = run_job(j)
            print(f"[laptop] {j['tag']} done in {results[j['tag']]['seconds']:.0f} s; {len(jobs) - i - 1} jobs left", flush=True)
        return results
    pending, running = list(jobs), {}
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                                initargs=(1,)) as pool:
        while pending or running:
            for j in [j for j in pending if all(d in results for d in j["deps"])][:workers - len(running)]:
                running[pool.submit(run_job, j)] = j
                pending.remove(j)
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in done:
                j = running.pop(f)
                results[j["tag"]] = f.result()
                print(f"[laptop] {j['tag']} done in {results[j['tag']]['seconds']:.0f} s; {len(pending)} jobs left", flush=True)
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
    """effect = treatment - baseline means; 'reproduces' only with >= 3 seeds each and effect >= 3 x pooled std."""
    base = next(r["values"] for r in study["rows"] if r["role"] == "baseline")
    treat = next(r["values"] for r in study["rows"] if r["role"] == "treatment")
    effect, std = statistics.mean(treat) - statistics.mean(base), pooled_std(base, treat)
    ok = min(len(base), len(treat)) >= 3 and effect > 0 and effect >= 3 * std
    return dict(study, verdict="reproduces" if ok else "does not reproduce", effect=round(effect, 3), std=round(std, 3))


def studies(m, res):
    """The claims, each a baseline, a treatment and optional ablations: {setting, role, values (one per seed)}."""
    S = m["seeds"]

    def row(setting, role, tag, key):
        return dict(setting=setting, role=role, values=[round(res[f"{tag}_s{s}"][key], 2) for s in S])
    pre = f"{m['pre_epochs']} ep x {m['num_train']} img"
    md = f"{m['md_epochs']} ep x {m['md_train']} img"
    md5 = f"{m['md5_epochs']} ep x {m['md_train']} img"

    def one(setting, role, tag, key):                   # a 1-seed ablation (seed S[0])
        return dict(setting=f"{setting} (1 seed)", role=role, values=[round(res[f"{tag}_s{S[0]}"][key], 2)])
    n_lab = round(m['fraction'] * m['num_train'])
    labels = f"{n_lab} labels, {m['ft_epochs']} ep"
    mae_ft = row(f"MAE pre-trained ({pre}, mask 0.75), fine-tuned on {labels}", "treatment", "ft_mae", "ft")
    teacher = res["teacher"]
    out = [
        dict(name="1a MAE vs scratch, fine-tuning", claim="MAE pre-training beats training from scratch with few labels "
             "(MAE §4), at equal fine-tuning epochs: val top-1 % after fine-tuning", rows=[
                 row(f"from scratch: MAE's encoder at step 0 (random init), the same recipe, {labels}",
                     "baseline", "ft_mae0", "ft"), mae_ft,
                 one(f"from scratch: finetune.py's own ViT init (learned positions), blr {m['scratch_blr']:g}, no layer "
                     f"decay, {labels}", "ablation", "ft_scratch", "ft")]),
        dict(name="1b MAE vs scratch, kNN", claim="frozen MAE features beat frozen random-init features (MAE Table 1 "
             "LIN, as kNN): kNN top-1 % on the labelled 10%", rows=[
                 row("from scratch: MAE's encoder at step 0 (random init), kNN", "baseline", "mae0", "knn"),
                 row(f"MAE encoder ({pre}, mask 0.75), kNN", "treatment", "mae_r0.75", "knn"),
                 row("finetune.py's own ViT init (learned positions), kNN", "ablation", "random", "knn")]),
        dict(name="2 mask ratio", claim=f"mask ratio 0.75 beats 0.25 (MAE Fig. 5) at equal pre-training time (0.25 "
             f"encodes 3x the tokens per image, so it gets {m['r25_epochs']} epochs to 0.75's {m['pre_epochs']}, rounded up "
             f"in its favour): kNN top-1 %", rows=[
                 row(f"MAE mask 0.25 ({m['r25_epochs']} ep x {m['num_train']} img), kNN", "baseline", "mae_r0.25", "knn"),
                 row(f"MAE mask 0.75 ({pre}), kNN", "treatment", "mae_r0.75", "knn")]),
        dict(name="3a teacher, fine-tuning", claim="distilling a semantically strong teacher's features beats "
             "reconstructing pixels at the same student size, images and epochs (MaskDistill Table 6; the teacher is "
             "not CLIP but a ViT fine-tuned with ALL train labels, so it has seen every label): val top-1 % after "
             "fine-tuning", rows=[
                 row(f"MAE pixels ({md}, mask 0.75), fine-tuned on {labels}", "baseline", "ft_mae_b", "ft"),
                 row(f"MaskDistill <- supervised teacher ({md}), fine-tuned on {labels}", "treatment", "ft_md_sup", "ft"),
                 dict(setting=f"the teacher itself: seed {S[0]}'s MAE encoder fine-tuned {m['teacher_epochs']} ep on "
                      f"all {m['num_train']} labels (1 run)", role="ablation", values=[round(teacher["ft"], 2)])]),
        dict(name="3b teacher, kNN", claim="the same comparison on frozen features: kNN top-1 %", rows=[
                 row(f"MAE pixels ({md}, mask 0.75), kNN", "baseline", "mae_b", "knn"),
                 row(f"MaskDistill <- supervised teacher ({md}), kNN", "treatment", "md_sup", "knn")]),
        dict(name="4a lr", claim="a small fine-tuning lr beats a large one (FT-CLIP Table 2): recipe blr "
             f"{m['ft_blr']:g} vs x 4, val top-1 %", rows=[
                 row(f"blr {4 * m['ft_blr']:g} (x 4)", "baseline", "ft_lr_x4", "ft"),
                 dict(mae_ft, setting=f"blr {m['ft_blr']:g} (the recipe)")]),
        dict(name="4b EMA", claim="the EMA of the weights beats the raw weights (FT-CLIP Table 3; the same runs, both "
             "evaluated): val top-1 %", rows=[
                 dict(mae_ft, setting="raw weights (the recipe)", role="baseline"),
                 row(f"EMA (horizon 16% of the run, FT-CLIP's 0.9998 scaled)", "treatment", "ft_mae", "ft_ema")]),
        dict(name="4c layer decay", claim="layer-wise lr decay beats none (FT-CLIP Tables 4-5): val top-1 %", rows=[
            row("layer decay 1.0 (none)", "baseline", "ft_ld1.0", "ft"),
            dict(mae_ft, setting=f"layer decay {finetune.PRESETS[m['vit']]['layer_decay']} (the recipe)")]),
        dict(name="4d mixup", claim="no mixup / cutmix beats mixup 0.8 + cutmix 1.0 (FT-CLIP Table 6): val top-1 %",
             rows=[row("mixup 0.8 + cutmix 1.0", "baseline", "ft_mixup", "ft"),
                   dict(mae_ft, setting="no mixup, no cutmix (the recipe)")]),
    ]
    for name in list(MD5)[1:]:
        out.append(dict(name=f"5 Smooth-l1 + LN vs {name.split(' (')[0]}", claim=f"MaskDistill's Smooth-l1 + LN target "
                        f"beats {name} (MaskDistill Table 8; study 3's teacher, {md5}): kNN top-1 %", rows=[
                            row(name, "baseline", md5_tag(name), "knn"),
                            row(DEFAULT, "treatment", md5_tag(DEFAULT), "knn")]))
    return [verdict(s) for s in out]


def md5_tag(name):
    """'MSE, no norm (Table 8)' -> 'md5_mse_none' (the runs' folder names)."""
    return f"md5_{MD5[name][1]}_{MD5[name][-1]}"


# ----------------------------------------------------------------------------- report

def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def verdict_line(st):
    """One study's computed verdict as a line of results.md (2 decimals on the ratio: 2.96 x is not 3 x)."""
    ratio = f"{st['effect'] / st['std']:.2f} x" if st["std"] > 0 else "n/a x"
    return (f"- **{st['name']}**: {st['verdict']}: effect {st['effect']:+.2f} points, pooled std {st['std']:.2f} "
            f"({ratio} the std). Claim: {st['claim']}.")


def write_results(out, name, report, runs, m, mode, total):
    when = datetime.date.today().isoformat()
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
    cmd = "python experiments/laptop.py" + ("" if mode == "full" else f" --{mode}")
    cpu = sum(r["cpu_seconds"] for r in runs.values())
    n_lab = round(m["fraction"] * m["num_train"])
    lines = [f"# Laptop-scale study ({mode} mode; {when}; {machine})", "",
             f"Regenerate: `{cmd}` (took {total / 60:.1f} min here on {report['workers']} worker process(es) of one "
             f"thread; the runs' CPU time adds up to {cpu / 60:.1f} min). Data: built-in, 32 px, 10 classes, "
             f"{m['num_train']} train / {m['num_val']} val images (`--data {m['data']}`). Fine-tuning: {n_lab} labels ({m['fraction']:.0%}, a "
             f"fresh class-stratified draw per seed), {m['ft_epochs']} epochs, batch {m['ft_batch']}, blr {m['ft_blr']:g}, "
             f"the `{m['vit']}` recipe otherwise; the number is the val top-1 of the last epoch. kNN: k = {m['knn_k']} "
             f"on frozen mean-pooled features, memory bank = the same {n_lab} labelled images. Chance is 10%. "
             f"Seeds: {', '.join(map(str, m['seeds']))} (a seed = pre-training + fine-tuning + label draw).", "",
             "Verdict rule: effect = treatment mean - baseline mean; **reproduces** only when both rows have at least "
             "3 seeds and effect >= 3 x the pooled seed std. The numbers are also in "
             f"[{name}.json]({name}.json).", "",
             "| study | setting | role | mean ± std | per seed |", "| --- | --- | --- | --- | --- |"]
    for st in report["studies"]:
        for r in st["rows"]:
            mu, sd = mean_std(r["values"])
            lines.append(f"| {st['name']} | {r['setting']} | {r['role']} | {mu:.1f} ± {sd:.1f} | "
                         f"{', '.join(f'{v:.1f}' for v in r['values'])} |")
    lines += ["", "Verdicts (computed):", ""]
    for st in report["studies"]:
        lines.append(verdict_line(st))
    lines += ["", f"Plots: ![curves](curves.png) ![bars](bars.png)", "", "Runs (wall seconds on a worker; CPU seconds):", "",
              "| run | seconds | CPU s | result |", "| --- | --- | --- | --- |"]
    for tag, r in runs.items():
        val = ", ".join(f"{k} {r[k]:.3g}" if isinstance(r[k], float) else f"{k} {r[k]}"
                        for k in ("ft", "ft_ema", "knn", "loss") if r.get(k) is not None)
        lines.append(f"| {tag} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} | {val} |")
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


COLORS = {"baseline": (120, 120, 120), "treatment": (31, 119, 180), "ablation": (255, 127, 14)}


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
    epochs = max(len(c) for cs, _ in series.values() for c in cs)
    ymax = min(100, math.ceil(max(20.0, max(v for cs, _ in series.values() for c in cs for v in c)) / 10) * 10)
    xy = lambda e, v: (L + (W - L - 20) * e / max(1, epochs - 1), H - B - (H - B - T) * v / ymax)   # noqa: E731
    d.text((L, 10), title, fill="black", font=f)
    for v in range(0, ymax + 1, 10):
        d.line([xy(0, v), xy(epochs - 1, v)], fill=(230, 230, 230))
        d.text((L - 40, xy(0, v)[1] - 8), f"{v}%", fill="black", font=f)
    for e in range(epochs):
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
            d.line([xy(e, v) for e, v in enumerate(c)], fill=tuple(255 - (255 - x) // 3 for x in col), width=1)
        mean = [statistics.mean(vs) for vs in zip(*curves)]
        d.line([xy(e, v) for e, v in enumerate(mean)], fill=col, width=3)
        # legend bottom-right, above the chance line: curves start low on the left and rise, so it stays clear
        label = f"{name} (thick: mean of {len(curves)} seeds)" if len(curves) > 1 else f"{name} (1 seed)"
        d.text((W - 340, xy(0, chance)[1] - 60 + 18 * i), label, fill=col, font=f)
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
    d.text((10, 8), "Val top-1 % (fine-tuned) or kNN top-1 % (frozen features): mean ± std over seeds", fill="black", font=f)
    for i, (role, col) in enumerate(COLORS.items()):
        d.rectangle([10 + 150 * i, 32, 24 + 150 * i, 44], fill=col)
        d.text((30 + 150 * i, 30), role, fill="black", font=f)
    y = T
    for st in report["studies"]:
        d.text((10, y + 3), f"{st['name']}: {st['verdict']} (effect {st['effect']:+.1f}, std {st['std']:.1f})",
               fill=(0, 110, 0) if st["verdict"] == "reproduces" else (170, 0, 0), font=f)
        y += rh
        for r in st["rows"]:
            mu, sd = mean_std(r["values"])
            d.text((24, y + 4), r["setting"][:78], fill="black", font=fs)
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
    runs_dir = args.runs_dir or os.path.join("runs", "laptop", mode)
    shutil.rmtree(runs_dir, ignore_errors=True)           # fresh runs: the seconds measure real work
    os.makedirs(out, exist_ok=True)
    m, t0 = MODES[mode], time.perf_counter()
    runs = run_jobs(plan(m, runs_dir), args.workers)
    total = time.perf_counter() - t0
    report = dict(minutes=round(total / 60, 2), studies=studies(m, runs))
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    write_results(out, "results", dict(report, workers=args.workers), runs, m, mode, total)
    plot_curves(os.path.join(out, "curves.png"), {
        "MAE pre-trained": ([runs[f"ft_mae_s{s}"]["curve"] for s in m["seeds"]], COLORS["treatment"]),
        "MAE's encoder at step 0": ([runs[f"ft_mae0_s{s}"]["curve"] for s in m["seeds"]], COLORS["baseline"]),
        "finetune.py's ViT init": ([runs[f"ft_scratch_s{m['seeds'][0]}"]["curve"]], COLORS["ablation"])},
        f"Study 1: val top-1 per fine-tuning epoch, {round(m['fraction'] * m['num_train'])} labels")
    plot_bars(os.path.join(out, "bars.png"), report)
    print(open(os.path.join(out, "results.md")).read())
    return report, runs


if __name__ == "__main__":
    main()
