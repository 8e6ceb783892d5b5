"""Training plumbing shared by mae.py, maskdistill.py and finetune.py, written once (MAE's engine.py).
Nothing here is paper-specific; each script keeps its paper.

  arguments    common flags; `--model` presets as defaults, the command line on top; `--print_args`;
               lr = blr x effective batch / lr_batch (MAE App. A.1); bad values end in one line at parse
               time (`Parser`, `fail`: once per machine under torchrun); a folder that holds a run (its
               results or a checkpoint, `holds_run`) is refused unless --resume auto / --overwrite
  setup        torchrun / DDP (NCCL on CUDA, gloo on CPU) or a plain process; `print0`; seeds per rank;
               bf16 autocast on CUDA, fp32 on CPU, or fp16 with a GradScaler (`make_scaler`); nothing
               is written until the inputs are checked (`start_run`, from `resume`)
  optimizer    AdamW groups with an optional `lr_scale` (layer-wise lr decay); warmup + cosine per step;
               LARS (linear probing)
  loop         `train_one_epoch`: accumulation with no_sync, clipping, an EMA hook, a stop on a
               non-finite loss, tqdm and `metrics.jsonl`; `evaluate` (top-1 / top-5)
  checkpoints  plain types, atomic, weights_only=True loads, `--resume auto`. Exact resume: every epoch
               re-seeds all RNGs from (seed, rank, epoch), so its data order, augmentations, masks and
               drop-path draws depend on nothing before it: on CPU, losses after a resume equal an
               uninterrupted run's bitwise (tests/test_engine.py).
"""
import argparse
import glob
import json
import math
import os
import pickle
import random
import re
import sys
import time
import weakref
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

# ----------------------------------------------------------------------------- arguments

def reports_errors():
    """Whether this process prints a run-ending error: a plain process, or under torchrun the first of each
    machine (LOCAL_RANK 0). Every rank meets the same bad input: one line per machine, not one per process."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0


def fail(message, status=1):
    """The SystemExit that ends a run with one line (`raise engine.fail(msg) from None`): the message on the
    reporting process, only the exit `status` elsewhere. torchrun stops every process once one exits, so the
    silent ones wait a moment first: the reporting one, on the same work, prints before it is stopped."""
    if not reports_errors():
        time.sleep(2)
        return SystemExit(status)
    if status == 1:
        return SystemExit(message)                  # Python prints it, exit status 1, no traceback
    print(message, file=sys.stderr, flush=True)
    return SystemExit(status)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are the one line that matters and where to look, not 16-32 lines of usage
    first; once under torchrun (`fail`); exit status 2, as argparse's."""
    def error(self, message):
        raise fail(f"{self.prog}: error: {message} (see {self.prog} --help)", status=2)


def common_parser(description):
    """Flags every script shares (the same names everywhere); the scripts add their paper's groups."""
    p = Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("run")
    g.add_argument("--model", required=True, help="a preset: its recipe becomes the defaults below "
                   "(`--model NAME --help` shows that preset's)")
    g.add_argument("--data", default="shapes", help="built-in (data.py: shapes, ...), cifar10, cifar100, "
                   "or an ImageNet-style folder with train/ and val/")
    g.add_argument("--data_root", default="./data", help="where cifar10/cifar100 are (or download to)")
    g.add_argument("--download", action="store_true", help="allow downloading cifar10/cifar100")
    g.add_argument("--num_train", type=int, default=None, help="built-in data: training images")
    g.add_argument("--num_val", type=int, default=None, help="built-in data: validation images")
    g.add_argument("--output_dir", default=None, help="default: runs/<script>_<model>")
    g.add_argument("--resume", default="", help="'' (fresh), 'auto' (the latest in --output_dir), or a path")
    g.add_argument("--overwrite", action="store_true", help="replace the run in --output_dir (else refused)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda")
    g.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="auto: "
                   "bf16 autocast on CUDA, fp32 on CPU; fp16: + loss scaling (GPUs without bf16: V100, T4)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (default: on for CUDA, off for CPU)")
    g.add_argument("--seed", type=int, default=0, help="base seed; each rank and epoch derives its own")
    g.add_argument("--num_workers", type=int, default=2, help="DataLoader worker processes per process")
    g.add_argument("--save_every", type=int, default=1, help="checkpoint every N epochs (and at the end)")
    g.add_argument("--keep_ckpts", type=int, default=2, help="how many epoch checkpoints to keep")
    g.add_argument("--log_every", type=int, default=10, help="metrics.jsonl line every N optimizer steps")
    g.add_argument("--max_steps", type=int, default=0, help="stop after N steps (0: all epochs; the lr "
                   "schedule still spans --epochs)")
    g.add_argument("--print_args", action="store_true", help="print the resolved arguments as JSON, exit")
    g = p.add_argument_group("optimization")
    g.add_argument("--epochs", type=int, default=100, help="training epochs (the cosine spans them)")
    g.add_argument("--warmup_epochs", type=float, default=5, help="linear lr warmup from 0, then cosine")
    g.add_argument("--batch_size", type=int, default=64, help="per process; x accum_iter x world = effective")
    g.add_argument("--accum_iter", type=int, default=1, help="gradient accumulation steps")
    g.add_argument("--blr", type=float, default=1e-3, help="peak lr at a total batch of --lr_batch")
    g.add_argument("--lr_batch", type=int, default=256, help="the batch of --blr (MAE 256, MaskDistill 2048)")
    g.add_argument("--lr", type=float, default=None, help="absolute peak lr (overrides blr scaling)")
    g.add_argument("--min_lr", type=float, default=0.0, help="lr at the end of the cosine")
    g.add_argument("--weight_decay", type=float, default=0.05, help="AdamW decoupled weight decay")
    g.add_argument("--betas", type=float, nargs=2, default=(0.9, 0.999), help="AdamW betas")
    g.add_argument("--clip_grad", type=float, default=None, help="max grad norm (None = no clipping)")
    return p


def parse_args(parser, presets, argv=None, script="run", resolve=None):
    """Resolve `--model`'s preset as defaults, the command line on top, then the effective batch and lr,
    then the script's own `resolve(args, parser)` (e.g. a mask count from a ratio). `--print_args` prints
    the result as one JSON object and exits. `--model X --help` shows X's values as the defaults."""
    pre = Parser(prog=parser.prog, add_help=False)          # --model alone: -h answers after the preset
    pre.add_argument("--model")
    model = pre.parse_known_args(argv)[0].model
    if model is not None:
        if model not in presets:
            parser.error(f"unknown --model '{model}'; choose one of: {', '.join(presets)}")
        parser.set_defaults(**presets[model])
    args = parser.parse_args(argv)
    args.betas = tuple(args.betas)
    check_args(args, parser)
    args.world_size = int(os.environ.get("WORLD_SIZE", 1))
    args.eff_batch_size = args.batch_size * args.accum_iter * args.world_size
    if args.lr is None:                                      # MAE App. A.1: lr = blr x batch / 256
        args.lr = args.blr * args.eff_batch_size / args.lr_batch
    if resolve is not None:
        resolve(args, parser)
    if args.output_dir is None:                              # a script's resolve may name it (finetune.py)
        args.output_dir = os.path.join("runs", f"{script}_{args.model}")
    if args.print_args:
        print(json.dumps(vars(args), indent=2, sort_keys=True))
        sys.exit(0)
    if not args.resume and not args.overwrite and holds_run(args.output_dir):
        parser.error(f"--output_dir {args.output_dir} holds an earlier run; continue it with --resume auto, "
                     f"replace it with --overwrite, or give another --output_dir")
    return args


def check_args(args, parser):
    """The common flags' ranges, checked at parse time: one line naming the flag (parser.error), never
    a traceback from inside a DataLoader or a reshape. The scripts check their own flags in `resolve`."""
    at_least = {"batch_size": 1, "accum_iter": 1, "epochs": 1, "lr_batch": 1, "save_every": 1, "keep_ckpts": 1,
                "log_every": 1, "max_steps": 0, "num_workers": 0, "num_train": 1, "num_val": 1,
                "warmup_epochs": 0, "blr": 0, "lr": 0, "min_lr": 0, "weight_decay": 0, "eval_every": 1}
    for name, low in at_least.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            parser.error(f"--{name} {value} must be >= {low}")
    if args.clip_grad is not None and args.clip_grad <= 0:
        parser.error(f"--clip_grad {args.clip_grad} must be > 0 (leave it out for no clipping)")
    if not all(0 <= b < 1 for b in args.betas):
        parser.error(f"--betas {args.betas[0]} {args.betas[1]} must both be in [0, 1)")


def check_img_size(parser, img_size, patch_size, flag="--img_size"):
    """A ViT cuts the image into whole patches: the resolution must be a multiple of the patch size."""
    if img_size < patch_size or img_size % patch_size:
        lo = max(patch_size, img_size // patch_size * patch_size)
        parser.error(f"{flag} {img_size} is not a multiple of the patch size {patch_size}; "
                     f"use e.g. {lo} or {lo + patch_size}")


# ----------------------------------------------------------------------------- setup

@dataclass
class Context:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    precision: str          # bf16 | fp16 | fp32

    distributed = property(lambda self: self.world_size > 1)
    is_master = property(lambda self: self.rank == 0)

    def autocast(self):                 # bf16 (or fp16) autocast on CUDA; a no-op in fp32 on the CPU
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(device_type=self.device.type, dtype=dtype) if dtype else nullcontext()


def print0(*args, **kwargs):        # rank 0 only, without patching print (MAE's setup_for_distributed)
    if not dist.is_initialized() or dist.get_rank() == 0:
        print(*args, **kwargs, flush=True)


def seed_everything(*keys):
    """Seed torch (CPU and CUDA), numpy and random from a tuple of ints, mixed by numpy's SeedSequence."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def setup(args):
    """One process, or one per GPU / CPU worker under torchrun -> a Context. Writes nothing: --output_dir is
    made once the inputs are checked (`start_run`)."""
    want = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise fail("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    rank, local_rank, world = (int(os.environ.get(k, d)) for k, d in
                               [("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)])
    if world > 1:
        dist.init_process_group(backend="nccl" if want == "cuda" else "gloo")
    device = torch.device(f"cuda:{local_rank}" if want == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True   # fp32 matmuls that remain (e.g. the EMA eval) use TF32
        torch.backends.cudnn.allow_tf32 = True
    # NOTE(paper): the papers' code trains in fp16 with loss scaling (MAE's amp, DeepSpeed for FT-CLIP,
    # BEiT v2, EVA); on a GPU we default to bf16 autocast (no scaler); --precision fp16 is theirs
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    args.compile = device.type == "cuda" if args.compile is None else args.compile
    seed_everything(args.seed, rank)
    ctx = Context(rank, local_rank, world, device, precision)
    print0(f"[engine] {world} process(es), device {device}, precision {precision}, compile {args.compile}; "
           f"effective batch {args.eff_batch_size} = {args.batch_size} x {args.accum_iter} accum x {world} "
           f"proc; peak lr {args.lr:.3g} (= blr {args.blr:.3g} x {args.eff_batch_size} / {args.lr_batch})")
    return ctx


# What the scripts write into --output_dir (--overwrite removes these, and only these). Of them, a folder
# holds a run only when it holds results or a checkpoint (RESULT_FILES); args.json, metrics.jsonl and
# encoder_init.pt (step 0) are what a run stopped before its first checkpoint leaves (LEFTOVERS): a fresh
# start removes them (nothing there to continue), so a log never mixes two runs.
RUN_FILES = ("args.json", "metrics.jsonl", "checkpoint-*.pt", "checkpoint-best.pt", "encoder*.pt",
             "summary.json", "eval.json", "recon_epoch*.png")
RESULT_FILES = ("checkpoint-*.pt", "encoder.pt", "summary.json", "eval.json", "recon_epoch*.png")
LEFTOVERS = ("args.json", "metrics.jsonl", "encoder_init.pt")


def folder_from(init, prefix):
    """runs/<prefix>_from_<source>: a run started from another run's file gets its own folder, named
    after that run (runs/<run>/encoder*.pt, checkpoint*.pt) or the file."""
    src = os.path.splitext(os.path.basename(init))[0]
    if src.startswith(("encoder", "checkpoint")):
        run = os.path.basename(os.path.dirname(os.path.abspath(init)))
        src = run + src.removeprefix("encoder").removeprefix("checkpoint")
    return os.path.join("runs", f"{prefix}_from_{src}")


def weights_line(args, start_epoch):
    """Where a run's weights come from, for its start-up line: --init (its EMA or raw weights),
    --pretrained, random init, or the checkpoint it resumed (which replaced all of them)."""
    given = (f"--init {args.init}" if args.init else f"--pretrained {args.pretrained}"
             if args.pretrained else "random init (nothing pre-trained)")
    if getattr(args, "resumed_from", None):              # resume: every weight is the file's
        return f"checkpoint {args.resumed_from} (epoch {start_epoch - 1} done), not {given}"
    ema = {True: " (its EMA weights; --no-init_ema for the raw ones)", False: " (its raw weights)"}
    return given + (ema.get(args.init_ema, "") if args.init else "")   # None: the file has none


def holds_run(output_dir):
    """Whether --output_dir holds a run: its results or a checkpoint."""
    return any(glob.glob(os.path.join(output_dir, pattern)) for pattern in RESULT_FILES)


_started = {}                          # id(args) -> a weak reference to it: the runs started in this process


def start_run(args):
    """Rank 0, once per run, when its inputs are checked (data found, weights and checkpoint loaded: from
    `resume`) or at its first file (mae.py's encoder_init.pt): make --output_dir, remove the earlier run's
    files (--overwrite) or what a run stopped before its first step left (a fresh start), write args.json.
    A run refused for its inputs writes nothing, so the corrected command needs no --overwrite."""
    ref = _started.get(id(args))
    if (ref is not None and ref() is args) or (dist.is_initialized() and dist.get_rank() != 0):
        return
    _started[id(args)] = weakref.ref(args)
    fresh = not args.resume and not holds_run(args.output_dir)
    remove = RUN_FILES if args.overwrite else LEFTOVERS if fresh else ()
    for f in {g for pattern in remove for g in glob.glob(os.path.join(args.output_dir, pattern))}:
        os.remove(f)                                 # the earlier run's files, none of anyone else's
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "args.json"), "w") as f:
        json.dump({**vars(args), "versions": versions()}, f, indent=2, sort_keys=True, default=str)


def finish(args, ctx, files):
    """The run's last line: the folder and the files to look at next (globs: the last match); cleanup."""
    if ctx.is_master:
        found = [sorted(glob.glob(os.path.join(args.output_dir, f)))[-1:] for f in files]
        names = [os.path.basename(f[0]) for f in found if f]
        print0(f"[done] results in {args.output_dir}{os.sep}: {', '.join(names)}")
    cleanup()


def versions():                                    # for args.json and checkpoints (informational)
    out = {"python": sys.version.split()[0]}
    for name in ["torch", "torchvision", "timm", "open_clip", "numpy"]:
        try:
            out[name] = str(__import__(name).__version__)
        except Exception:                          # noqa: BLE001
            pass
    return out


def make_scaler(ctx):
    """fp16: a GradScaler (loss scaling, as the official MAE / FT-CLIP code); bf16 needs none: None."""
    if ctx.precision != "fp16":
        return None
    print0("[engine] fp16: dynamic loss scaling (GradScaler); steps whose gradients overflow are skipped")
    return torch.amp.GradScaler(ctx.device.type)


def wrap_model(model, ctx, args):
    """The handle that trains: compiled (optional) and DDP-wrapped (when distributed). Always save `model`."""
    train_model = torch.compile(model) if args.compile else model
    if ctx.distributed:
        train_model = DDP(train_model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
    return train_model


def cleanup():
    if dist.is_initialized():                 # every rank done, then the process group closes
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t):                        # in place, on every rank
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


# ----------------------------------------------------------------------------- data loaders

def train_loader(dataset, args, ctx, collate_fn=None):
    """(loader, optimizer steps per epoch). Shuffled, drop_last, a DistributedSampler even for one
    process: the order is a function of (seed, epoch) only (train_one_epoch calls set_epoch)."""
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                                                  shuffle=True, seed=args.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=args.num_workers, pin_memory=ctx.device.type == "cuda",
                                         collate_fn=collate_fn, persistent_workers=False)
    if len(loader) < args.accum_iter:
        raise SystemExit(f"{len(dataset)} images is less than one step of {args.eff_batch_size}; lower "
                         f"--batch_size")
    return loader, len(loader) // args.accum_iter


def eval_loader(dataset, args, ctx, batch_size=None):
    """Each rank takes indices rank, rank+world, ... (no padding duplicates); sum counts: all_reduce_sum."""
    part = torch.utils.data.Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
    return torch.utils.data.DataLoader(part, batch_size=batch_size or args.batch_size, shuffle=False,
                                       num_workers=args.num_workers, pin_memory=ctx.device.type == "cuda")


# ----------------------------------------------------------------------------- optimizer and schedule

def param_groups(model, weight_decay, lr_scale_of=None):
    """AdamW groups, no decay for 1-D params (norms, layer scale), biases and the names the model's
    `no_weight_decay()` gives: vit.ViT's pos_embed, cls_token, mask_token; MaskDistill's pos_embed,
    cls_token (its mask token IS decayed, as BEiT v2 / EVA-01); MAE's none (main_pretrain.py).
    `lr_scale_of(name) -> (layer_id, scale)`: layer-wise lr decay, applied at every step (set_lr)."""
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else set()
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:                              # frozen: MAE's sin-cos tables, frozen blocks
            continue
        no_decay = p.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in skip
        layer, scale = lr_scale_of(name) if lr_scale_of else (0, 1.0)
        key = f"layer_{layer}_{'no_decay' if no_decay else 'decay'}"
        if key not in groups:
            groups[key] = {"name": key, "params": [], "param_names": [], "lr_scale": scale,
                           "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)
    return list(groups.values())


def lr_at(step, total_steps, warmup_steps, lr, min_lr):
    """Linear warmup from 0, then a half-cycle cosine to min_lr, per optimizer step (MAE lr_sched.py)."""
    if step < warmup_steps:
        return lr * step / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))     # 1 from the end on
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer, lr):                    # each group's lr_scale (layer decay) times the schedule
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as MAE's util/lars.py has it for linear probing (MAE App. A.1, Table 10):
    SGD with momentum whose update of each weight matrix (ndim > 1) is rescaled by the trust ratio
    trust * ||w|| / ||g + wd w||; biases and norms (ndim <= 1) get neither weight decay nor the ratio."""
    def __init__(self, params, lr=0.0, weight_decay=0.0, momentum=0.9, trust_coefficient=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in [p for p in g["params"] if p.grad is not None]:
                dp = p.grad
                if p.ndim > 1:                              # a weight matrix: decay, then the trust ratio
                    dp = dp.add(p, alpha=g["weight_decay"])
                    w_norm, u_norm = torch.norm(p), torch.norm(dp)
                    one = torch.ones_like(w_norm)
                    trust = torch.where(u_norm > 0, g["trust_coefficient"] * w_norm / u_norm, one)
                    dp = dp.mul(torch.where(w_norm > 0, trust, one))
                mu = self.state[p].setdefault("mu", torch.zeros_like(p))
                mu.mul_(g["momentum"]).add_(dp)
                p.add_(mu, alpha=-g["lr"])


# ----------------------------------------------------------------------------- the training loop

class MetricsLog:
    """Appends one JSON object per line to <output_dir>/metrics.jsonl on rank 0."""
    def __init__(self, output_dir, ctx):
        self.path = os.path.join(output_dir, "metrics.jsonl") if ctx.is_master else None

    def log(self, **row):
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")


def train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx, log, *, model=None,
                    ema=None, scaler=None):
    """One epoch of optimizer steps; returns the mean loss. `loss_fn(train_model, batch) -> (loss,
    extras)`, extras a dict of floats to log. Stops (SystemExit) on a non-finite loss before any update
    or save: the last checkpoint on disk is the last good one. `model`: the unwrapped one, for the EMA."""
    seed_everything(args.seed, ctx.rank, epoch)    # exact resume: this epoch's RNG depends on nothing earlier
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    steps_per_epoch = len(loader) // args.accum_iter
    total_steps, warmup_steps = args.epochs * steps_per_epoch, int(args.warmup_epochs * steps_per_epoch)
    train_model.train()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", dynamic_ncols=True, leave=False,
               file=sys.stderr) if ctx.is_master else None
    batches, losses, t0, skipped_steps = iter(loader), [], time.perf_counter(), 0
    for i in range(steps_per_epoch):
        step = epoch * steps_per_epoch + i                  # global optimizer step
        if args.max_steps and step >= args.max_steps:
            break
        lr = lr_at(step, total_steps, warmup_steps, args.lr, args.min_lr)
        set_lr(optimizer, lr)
        loss_sum, extras = torch.zeros((), device=ctx.device), {}
        for micro in range(args.accum_iter):
            batch = next(batches)
            last = micro == args.accum_iter - 1
            # DDP all-reduces gradients in backward; skip that on all but the last micro-step.
            with train_model.no_sync() if (ctx.distributed and not last) else nullcontext():
                with ctx.autocast():
                    loss, extras = loss_fn(train_model, batch)
                scaled = loss / args.accum_iter
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += loss.detach().float()
        loss_value = all_reduce_sum(loss_sum / args.accum_iter / ctx.world_size).item()   # same on every rank
        if not math.isfinite(loss_value):
            raise SystemExit(f"[engine] loss is {loss_value} at epoch {epoch} step {step}; stopping without "
                             f"an update or a save (the last checkpoint in {args.output_dir} is the last "
                             f"good one). Try a lower --blr/--lr, --clip_grad, or --precision fp32.")
        if scaler is not None:
            scaler.unscale_(optimizer)                # clip (and log) the true gradients, not the scaled ones
        grad_norm = torch.nn.utils.clip_grad_norm_(params, args.clip_grad) if args.clip_grad else None
        if scaler is not None:
            # fp16: inf / nan gradients = the loss scale overflowed, not divergence (the loss was finite):
            # the scaler skips the step and halves the scale; the run goes on (as MAE's NativeScaler)
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            skipped_steps += scaler.get_scale() < scale
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        # after every step, a skipped one too, as timm.utils.ModelEma in FT-CLIP / BEiT v2
        if ema is not None:
            ema.update(model)
        losses.append(loss_value)
        ips = (i + 1) * args.eff_batch_size / (time.perf_counter() - t0)     # images/s since the epoch began
        if (step + 1) % args.log_every == 0 or i == steps_per_epoch - 1:
            row = {"step": step + 1, "epoch": epoch, "loss": loss_value, "lr": lr, "img_s": round(ips, 1),
                   **extras}
            if grad_norm is not None and math.isfinite(float(grad_norm)):     # inf on an fp16 overflow step
                row["grad_norm"] = float(grad_norm)
            if scaler is not None:
                row.update(loss_scale=scaler.get_scale(), skipped_steps=skipped_steps)   # this epoch's so far
            log.log(**row)
        if bar is not None:
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{ips:.0f}", refresh=False)
            bar.update()
    if bar is not None:
        bar.close()
    return sum(losses) / max(len(losses), 1)


def end_of_epoch(args, ctx, epoch, steps_per_epoch, model, optimizer, **ckpt):
    """A checkpoint every --save_every epochs, at the last, and when --max_steps ends the run early
    (`ckpt`: save_checkpoint's scaler, ema, extra). -> (steps done, checkpoint saved?, run finished?)"""
    done = bool(args.max_steps) and (epoch + 1) * steps_per_epoch >= args.max_steps
    step = min((epoch + 1) * steps_per_epoch, args.max_steps or 10 ** 12)
    save = (epoch + 1) % args.save_every == 0 or epoch + 1 == args.epochs or done
    if save:
        save_checkpoint(args, ctx, epoch, model, optimizer, step=step, **ckpt)
    return step, save, done


@torch.no_grad()
def evaluate(model, loader, ctx):
    """(top-1 %, top-5 %) of a classifier on the eval split; each rank counts its share (eval_loader)."""
    was_training = model.training
    model.eval()
    counts = torch.zeros(3, dtype=torch.float64, device=ctx.device)   # top-1 hits, top-5 hits, images
    for imgs, target in loader:
        imgs, target = imgs.to(ctx.device, non_blocking=True), target.to(ctx.device, non_blocking=True)
        with ctx.autocast():
            logits = model(imgs)                                                     # (B, K)
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == target[:, None]  # (B, 5) bool
        n = torch.tensor(len(target), device=ctx.device)
        counts += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), n])
    all_reduce_sum(counts)
    model.train(was_training)
    n = max(counts[2].item(), 1.0)
    return 100 * counts[0].item() / n, 100 * counts[1].item() / n


# ----------------------------------------------------------------------------- checkpoints

def write_json(ctx, path, obj):                      # summary.json, eval.json: rank 0
    if ctx.is_master:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)


def atomic_save(obj, path):
    """torch.save to a temp file, then rename: a crash never leaves a half-written file."""
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def plain(x):
    """args as JSON-safe plain types (no pickled Namespace: checkpoints load with weights_only=True)."""
    return json.loads(json.dumps(x, default=str))


def rng_state():
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    random.setstate(tuple(tuple(s) if isinstance(s, list) else s for s in state["python"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(args, ctx, epoch, model, optimizer, *, step, scaler=None, ema=None, extra=None,
                    name=None):
    """Rank 0 writes `checkpoint-{epoch:04d}.pt` (or `name`) atomically and prunes old epoch checkpoints."""
    if ctx.is_master:
        obj = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scaler": scaler and scaler.state_dict(), "ema": ema and ema.state_dict(), "epoch": epoch,
               "step": step, "args": plain(vars(args)), "rng": rng_state(), "versions": versions(),
               "extra": plain(extra or {})}
        atomic_save(obj, os.path.join(args.output_dir, name or f"checkpoint-{epoch:04d}.pt"))
        if name is None:
            for old in list_checkpoints(args.output_dir)[:-args.keep_ckpts]:
                os.remove(old)
    if dist.is_initialized():
        dist.barrier()


def list_checkpoints(output_dir):
    paths = glob.glob(os.path.join(output_dir, "checkpoint-*.pt"))
    return sorted((p for p in paths if re.search(r"checkpoint-\d+\.pt$", p)),
                  key=lambda p: int(re.search(r"(\d+)\.pt$", p).group(1)))


class UnreadableCheckpoint(SystemExit):
    """A file torch.load cannot read (truncated, or not a checkpoint): one line naming it."""


SAFE_GLOBALS = [argparse.Namespace]         # what official MAE / BEiT checkpoints pickle: their `args`


def load_file(path, flag=None):
    """torch.load(weights_only=True) with the official files' few types allowed; one-line errors that tell a
    missing file, one that is no checkpoint (text, an image), a truncated one and an intact-but-refused one
    apart (`flag` names the option that gave `path`)."""
    where = f"{flag} {path}" if flag else f"checkpoint {path}"
    if not os.path.isfile(path):
        raise SystemExit(f"{where}: no such file" if flag else f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    # torch.save writes a zip archive ("PK"); files of torch < 1.6 and official .pth files of that age are a
    # bare pickle (protocol 2+: "\x80"). Anything else (text, an image, ...) is no checkpoint at all.
    if not head:
        raise UnreadableCheckpoint(f"{where} is empty (0 bytes); copy or save it again")
    if not head.startswith((b"PK", b"\x80")):
        shown = head.decode("utf-8", "replace").split("\n")[0].strip()
        raise UnreadableCheckpoint(f"{where} is not a checkpoint: not a file torch.save writes (it begins "
                                   f"{shown[:12]!r}); give a .pt / .pth file: a run's checkpoint-*.pt or "
                                   f"encoder.pt, or an official release's weights")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:                      # intact, but it pickles a class we do not run
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        what = found.group(1) if found else "an object weights_only=True refuses"
        raise SystemExit(f"{where} is intact but pickles {what}, which is not loaded (weights_only=True: no "
                         f"code from a file runs here); re-save its tensors: torch.save({{'model': "
                         f"ckpt['model']}}, path)") from None
    except Exception as e:                                   # noqa: BLE001 - zip reader, EOF: unreadable
        reason = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
        raise UnreadableCheckpoint(f"{where} is unreadable, probably truncated ({reason}); copy or save it "
                                   f"again") from None


def state_dict_mismatch(model, state, show=3):
    """'' if `state` has exactly `model`'s keys and shapes; else one line naming the first few differences."""
    own = model.state_dict()
    shapes = [f"{k} {tuple(state[k].shape)} in the file vs {tuple(v.shape)} here" for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    parts = [f"{len(lst)} {what}: {', '.join(lst[:show])}{', ...' if len(lst) > show else ''}"
             for what, lst in [("shape mismatch(es)", shapes), ("key(s) missing from the file", missing),
                               ("unexpected key(s)", unexpected)] if lst]
    return "; ".join(parts)


def resume(args, model, optimizer, *, scaler=None, ema=None):
    """--resume auto: the latest checkpoint in --output_dir (an unreadable one is skipped for the one
    before it), or a path. Restores model, optimizer, scaler, EMA and RNG. -> (start epoch, extra).
    The scripts call it once data and weights are in hand: then the run starts (`start_run`)."""
    start_epoch, extra = load_resume(args, model, optimizer, scaler=scaler, ema=ema)
    start_run(args)
    return start_epoch, extra


def load_resume(args, model, optimizer, *, scaler=None, ema=None):
    """`resume` without starting the run."""
    if not args.resume:
        return 0, {}
    if args.resume == "auto":
        found = list_checkpoints(args.output_dir)
        if not found:
            print0(f"[engine] --resume auto: no checkpoint in {args.output_dir}, starting fresh")
            return 0, {}
        for path in reversed(found):
            try:
                ckpt = load_file(path)
                break
            except UnreadableCheckpoint:
                print0(f"[engine] WARNING: --resume auto: {path} is unreadable (truncated?); trying the one "
                       f"before it")
        else:
            raise SystemExit(f"--resume auto: none of the {len(found)} checkpoint(s) in {args.output_dir} is "
                             f"readable; delete them to start fresh, or use another --output_dir")
    else:
        path = args.resume
        try:
            ckpt = load_file(path)
        except UnreadableCheckpoint as e:
            raise SystemExit(f"{e}; or resume from an earlier checkpoint-*.pt of that run (--resume auto "
                             f"skips unreadable ones)") from None
    mismatch = state_dict_mismatch(model, ckpt["model"])
    if mismatch:
        saved = ckpt.get("args", {}).get("model", "?")
        raise SystemExit(f"checkpoint {path} (--model {saved}) does not fit --model {args.model}: "
                         f"{mismatch}; resume with the same --model and architecture flags, or use a new "
                         f"--output_dir")
    model.load_state_dict(ckpt["model"])
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except ValueError as e:                             # other parameter groups: e.g. another --freeze_blocks
        raise SystemExit(f"checkpoint {path}: the optimizer state does not fit this run's parameter groups "
                         f"({e}); resume with the flags the checkpoint was trained with") from None
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    if ema is not None and ckpt.get("ema"):
        ema.load_state_dict(ckpt["ema"])
    set_rng_state(ckpt["rng"])
    args.resumed_from = path                    # the scripts' start-up line names where the weights came from
    print0(f"[engine] resumed from {path} (epoch {ckpt['epoch']} done, step {ckpt['step']})")
    return ckpt["epoch"] + 1, ckpt.get("extra", {})


def save_encoder(path, encoder, vit_config, source, args):
    """The encoder alone, for finetune.py --init / maskdistill.py --teacher: {model, vit_config, ...}.
    Into a run's --output_dir, the run starts first (mae.py's encoder_init.pt comes before its data)."""
    out = getattr(args, "output_dir", None)
    if out and os.path.abspath(os.path.dirname(path)) == os.path.abspath(out):
        start_run(args)
    atomic_save({"model": encoder.state_dict(), "vit_config": asdict(vit_config), "source": source,
                 "args": plain(vars(args))}, path)
