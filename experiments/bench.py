"""Benchmarks, side by side in one run; prints a report and writes experiments/bench.md.

  1. our ViT-B/16 forward+backward time / timm's vit_base_patch16_224 (same config, random init, same batch,
     interleaved repeats, median). Goal <= 1.0.
  2. MAE ViT-B/16 training step: visible-only encoder vs --encoder_mask_tokens (MAE Table 1c / Table 2).
     Goal >= 3x (paper: 2.8-4.1x wall-clock for ViT-L/H on TPUs).
  3. params and GFLOPs (multiply-adds) of every preset next to the papers' numbers, with the relative error.
  4. on a CUDA GPU only: images/s, peak memory and MFU (model FLOPs / bf16 peak) for clip_b16 fine-tuning and
     MAE ViT-B pre-training at batch 256 with bf16 + torch.compile, 200 steps on synthetic 224 px data. Skipped (and
     said so) without a GPU. With a GPU, sections 1 and 2 run on it too (bf16 autocast, eager).

Run: python experiments/bench.py            (CPU: about 2-3 minutes on 2 cores; GPU: about 5 minutes, mostly compiling)
     python experiments/bench.py --tiny     (a smoke test with tiny models; what tests/test_experiments.py runs)
"""
import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mae import create_mae  # noqa: E402
from mae_figures import mae_flops  # noqa: E402
from vit import count_params_and_flops, create_model  # noqa: E402

# Published numbers: (preset, img, what, paper value, source)
PAPER = [
    ("clip_b16", 224, "GFLOPs", 17.5, "FT-CLIP Table 11"), ("clip_b16", 384, "GFLOPs", 55.4, "FT-CLIP Table 11"),
    ("clip_l14", 224, "GFLOPs", 80.7, "FT-CLIP Table 11"), ("clip_l14", 336, "GFLOPs", 190.6, "FT-CLIP Table 11"),
    ("vit_large_patch16", 384, "GFLOPs", 190.7, "FT-CLIP Table 11 (ViT-L/16@384)"),
    ("eva_g14", 224, "params (M, no head)", 1011.0, "EVA Table 3a"),
    ("vit_base_patch16", 224, "params (M)", 86.567656, "MAE fine-tune ViT-B (models_vit.py, 1000 classes)"),
]


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns, repeats, dev, warmup=2):
    """Median seconds of each callable, run in turn (a, b, a, b, ...) so drift hits both alike."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            sync(dev)
            t0 = time.perf_counter()
            f()
            sync(dev)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def autocast(dev):
    """bf16 autocast on CUDA (as training runs there), fp32 on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)


def bench_vit_vs_timm(batch, repeats, tiny, dev):
    import timm
    torch.manual_seed(0)
    if tiny:
        ours = create_model("vit_test")
        ref = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                                num_classes=10, pretrained=False)
        size = 32
    else:
        ours, ref, size = create_model("vit_base_patch16"), timm.create_model("vit_base_patch16_224", pretrained=False), 224
    # each its own random weights: the same work (the time does not depend on the values), and no step of the
    # benchmark computes a course answer through timm (course/README.md: check step h)
    ours, ref = ours.to(dev), ref.to(dev)
    x = torch.randn(batch, 3, size, size, device=dev)

    def step(m):
        def f():
            with autocast(dev):
                y = m(x)
            y.float().sum().backward()
        return f
    t = interleaved({"ours": step(ours), "timm": step(ref)}, repeats, dev)
    return t["ours"], t["timm"]


def step_times(name, batch_size, repeats, img_size=None, device="cpu", compile=False):
    """MAE Table 1c / Table 2: median seconds of one training step (fwd + bwd) of MAE `name`, visible-only
    encoder vs --encoder_mask_tokens, same weights and batch, interleaved repeats after warm-up rounds (where
    compilation happens). bf16 autocast on CUDA, fp32 on the CPU. Returns ({"visible-only": s, "w/ [M]": s},
    img_size)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    kw = {"img_size": img_size} if img_size else {}
    fast, slow = create_mae(name, **kw).to(dev), create_mae(name, encoder_mask_tokens=True, **kw).to(dev)
    slow.load_state_dict(fast.state_dict(), strict=False)
    size = fast.encoder.cfg.img_size
    x = torch.randn(batch_size, 3, size, size, device=dev)                      # (B, C, H, W)
    models = {"visible-only": fast, "w/ [M]": slow}
    if compile:
        models = {k: torch.compile(m) for k, m in models.items()}

    def step(m):
        def f():
            with autocast(dev):
                loss = m(x)[0]
            loss.backward()
        return f
    return interleaved({k: step(m) for k, m in models.items()}, repeats, dev, warmup=3 if compile else 2), size


def bench_mae(model, batch, repeats, dev, compile=False):
    """mae.step_times plus the FLOPs of both. On a GPU the step is timed compiled, as training runs: eager, ViT-L's
    3,000-odd kernel launches per step cost more than the visible-only encoder's small matmuls (measured on an H100:
    eager L at batch 64 gives 1.26x)."""
    t, _ = step_times(model, batch, repeats, device=dev, compile=compile)
    return t["visible-only"], t["w/ [M]"], mae_flops(model, False), mae_flops(model, True)


def gpu_job(build, batch, is_mae, steps, peak):
    """One job's (img/s, peak GiB, MFU, step FLOPs): bf16 autocast + compile + fused AdamW, timed over `steps` steps
    after 3 warm-up steps (compilation). Model FLOPs are counted by torch's FlopCounterMode on one eager step
    (matmuls and attention, fwd + bwd, 2 per multiply-add), so MFU = FLOPs / time / peak needs no formula."""
    from torch.utils.flop_counter import FlopCounterMode
    dev = torch.device("cuda")
    model = build().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x, y = torch.randn(batch, 3, 224, 224, device=dev), torch.randint(0, 1000, (batch,), device=dev)
    cmodel = torch.compile(model)

    def loss_of(m):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return m(x)[0] if is_mae else torch.nn.functional.cross_entropy(m(x), y)

    with FlopCounterMode(display=False) as fc:           # model FLOPs of one step (fwd + bwd; 2 per multiply-add)
        loss_of(model).backward()
    opt.zero_grad(set_to_none=True)

    def step():
        loss_of(cmodel).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    flops = fc.get_total_flops()
    return batch / dt, torch.cuda.max_memory_allocated() / 2 ** 30, flops / dt / peak, flops / batch


# dense bf16 tensor-core peaks (datasheets, TFLOP/s) for MFU; other GPUs: --peak_tflops
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.2}


def matmul_tflops(n=8192, reps=10):
    """What a large bf16 matmul reaches on this GPU: the practical ceiling next to the datasheet peak."""
    a, b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16), torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def bench_gpu(tiny, peak_tflops, batch, steps):
    """clip_b16 fine-tuning step and MAE ViT-B pre-training step on CUDA, bf16 + compile: img/s, memory, MFU."""
    if not torch.cuda.is_available():
        return None, None
    name = torch.cuda.get_device_name()
    peak = peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        raise SystemExit(f"no bf16 peak known for '{name}': pass --peak_tflops (dense bf16 TFLOP/s of its datasheet)")
    jobs = [("clip_b16 fine-tune (FT-CLIP head, 1000 classes)",
             lambda: create_model("clip_b16", global_pool="ln_avg", proj_dim=0, num_classes=1000), False),
            ("MAE ViT-B/16 pre-train (mask 0.75)", lambda: create_mae("mae_vit_base_patch16"), True)]
    rows = []
    for job, build, is_mae in jobs:
        b = 8 if tiny else batch
        rows.append((job, b, *gpu_job(build, b, is_mae, 3 if tiny else steps, peak * 1e12)))
        torch.cuda.empty_cache()
    return rows, dict(name=name, peak=peak, matmul=matmul_tflops(2048 if tiny else 8192))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny models: a smoke test of this script")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats of sections 1-2 (default 5 on CPU, 20 on GPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda: where sections 1 and 2 run (3 is counted, 4 needs CUDA)")
    p.add_argument("--batch", type=int, default=None, help="batch of the ViT-B comparison (default 4 on CPU, 128 on GPU)")
    p.add_argument("--mae_batch", type=int, default=None, help="batch of the MAE comparison (default 8 on CPU, 128 on GPU)")
    p.add_argument("--mae_models", nargs="+", default=None, help="section 2's MAE presets (default: B, and L on a GPU; "
                   "e.g. --sections 2 --mae_models mae_vit_large_patch16 --mae_batch 4 --repeats 3)")
    p.add_argument("--gpu_batch", type=int, default=256, help="section 4 batch (FT-CLIP: 256 per GPU)")
    p.add_argument("--gpu_steps", type=int, default=200, help="section 4 timed steps per job")
    p.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4], help="which sections to run")
    p.add_argument("--peak_tflops", type=float, default=None, help="dense bf16 peak for MFU (default: by GPU name)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.md"))
    args = p.parse_args(argv)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    gpu = dev.type == "cuda"
    args.repeats = args.repeats or (20 if gpu else 5)
    args.batch = args.batch or (128 if gpu else 4)
    args.mae_batch = args.mae_batch or (256 if gpu else 8)
    when = datetime.date.today().isoformat()
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if gpu:
        machine += f", GPU {torch.cuda.get_device_name()}"
    lines = [f"# Benchmarks ({when}; {machine})", "",
             "Regenerate: `python experiments/bench.py`. Medians of interleaved repeats; sections 1-2 run on "
             f"{'the GPU in bf16 autocast (section 1 eager, section 2 compiled)' if gpu else 'the CPU in fp32'}.", ""]

    if 1 in args.sections:
        ours, ref = bench_vit_vs_timm(args.batch, args.repeats, args.tiny, dev)
        label = "ViT (test size)" if args.tiny else f"ViT-B/16 @224, batch {args.batch}, {dev.type}"
        lines += ["## 1. Our ViT vs timm (forward + backward)", "", "| model | ours (ms) | timm (ms) | ours / timm | goal |",
                  "| --- | --- | --- | --- | --- |",
                  f"| {label} | {ours * 1e3:.1f} | {ref * 1e3:.1f} | {ours / ref:.3f} | <= 1.0 |", ""]

    if 2 in args.sections:
        lines += ["## 2. MAE training step: visible-only encoder vs encoder with mask tokens (MAE Table 1c / 2)", "",
                  "| model | visible-only (ms) | w/ [M] (ms) | wall-clock speed-up | forward FLOPs ratio | goal |",
                  "| --- | --- | --- | --- | --- | --- |"]
    # MAE Table 2 times ViT-L and ViT-H; on a GPU there is room for L too (its FLOPs ratio is Table 1c's 3.3x)
    mae_runs = [("mae_vit_test", args.mae_batch)] if args.tiny else [("mae_vit_base_patch16", args.mae_batch)]
    if gpu and not args.tiny:
        mae_runs.append(("mae_vit_large_patch16", max(1, args.mae_batch // 2)))
    if args.mae_models:
        mae_runs = [(m, args.mae_batch) for m in args.mae_models]
    for mae_model, mb in mae_runs if 2 in args.sections else []:
        vis, msk, f_vis, f_msk = bench_mae(mae_model, mb, args.repeats, dev, compile=gpu)
        lines.append(f"| {mae_model}, batch {mb}, {dev.type}{' compiled' if gpu else ''} | {vis * 1e3:.1f} | {msk * 1e3:.1f} | {msk / vis:.2f}x | "
                     f"{f_msk / f_vis:.2f}x | >= 3x (paper 2.8-4.1x, L and H) |")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if not args.tiny and not gpu and 2 in args.sections:
        lf_vis, lf_msk = mae_flops("mae_vit_large_patch16", False), mae_flops("mae_vit_large_patch16", True)
        lines.append(f"| mae_vit_large_patch16 (FLOPs only) | | | | {lf_msk / lf_vis:.2f}x | paper 3.3x (Table 1c) |")
    lines.append("")

    if 3 in args.sections:
        lines += ["## 3. Parameters and GFLOPs (multiply-adds) of the presets vs the papers", "",
                  "| preset | img | quantity | ours | paper | rel. error | source |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, img, what, paper, src in ([] if args.tiny else PAPER):
            params, gflops = count_params_and_flops(name, img)
            val = gflops if what == "GFLOPs" else (params - 1408 * 1000 - 1000 if "no head" in what else params) / 1e6
            lines.append(f"| {name} | {img} | {what} | {val:.2f} | {paper} | {(val - paper) / paper:+.2%} | {src} |")
        presets = ["vit_test", "clip_test"] if args.tiny else ["vit_tiny_patch16", "vit_small_patch16", "vit_base_patch16",
                                                              "vit_large_patch16", "vit_huge_patch14", "clip_b16", "clip_l14",
                                                              "eva_g14", "vit_mini"]
        lines += ["", "| preset | params (M) | GFLOPs @ default size |", "| --- | --- | --- |"]
        for name in presets:
            params, gflops = count_params_and_flops(name)
            lines.append(f"| {name} | {params / 1e6:.2f} | {gflops:.3f} |")
        lines.append("")

    if 4 in args.sections:
        rows, info = bench_gpu(args.tiny, args.peak_tflops, args.gpu_batch, args.gpu_steps) if gpu else (None, None)
        lines += ["## 4. GPU training throughput and MFU (bf16 autocast + torch.compile + fused AdamW, synthetic data)", ""]
        if rows is None:
            lines.append("No CUDA GPU here: nothing measured (numbers are only written when measured).")
        else:
            lines += [f"GPU: {info['name']}. MFU = model FLOPs (torch FlopCounterMode, fwd + bwd) / step time / the "
                      f"datasheet's dense bf16 peak, {info['peak']:g} TFLOP/s; an 8192^3 bf16 matmul reaches "
                      f"{info['matmul']:.0f} TFLOP/s here. {3 if args.tiny else args.gpu_steps} timed steps per job after "
                      "3 warm-up steps.", "",
                      "| job | batch | img/s | peak memory (GiB) | GFLOPs / img (fwd+bwd) | MFU | goal |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {n} | {b} | {ips:.0f} | {mem:.1f} | {f / 1e9:.0f} | {mfu:.1%} | >= 45% |"
                      for n, b, ips, mem, mfu, f in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return report


if __name__ == "__main__":
    main()
