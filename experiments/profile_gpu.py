"""Where the GPU time goes (issue 6: "if a goal is missed, profile"): torch.profiler tables for
  1. our ViT-B/16 vs timm's, eager bf16 forward + backward (bench.py section 1), and
  2. one compiled clip_b16 fine-tuning step and one compiled MAE ViT-B step (bench.py section 4).
Run on a CUDA machine: python experiments/profile_gpu.py [--out DIR]   (prints the top kernels by GPU time)
"""
import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mae import create_mae  # noqa: E402
from vit import create_model  # noqa: E402


def table(fn, steps=5, rows=18):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70)


def train_step(model, x, y, opt, is_mae):
    def f():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x)[0] if is_mae else torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
    return f


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=".")
    args = p.parse_args()
    import timm
    dev = torch.device("cuda")
    x, y = torch.randn(128, 3, 224, 224, device=dev), torch.randint(0, 1000, (128,), device=dev)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False).to(dev)
    ours = create_model("vit_base_patch16").to(dev)
    ours.load_state_dict(ref.state_dict())
    out = {}
    for name, m in [("eager_ours", ours), ("eager_timm", ref)]:
        out[name] = table(train_step(m, x, y, None, False))
    x2, y2 = torch.randn(256, 3, 224, 224, device=dev), torch.randint(0, 1000, (256,), device=dev)
    clip = create_model("clip_b16", global_pool="ln_avg", proj_dim=0, num_classes=1000).to(dev)
    mae = create_mae("mae_vit_base_patch16").to(dev)
    for name, m, is_mae in [("compiled_clip_b16", clip, False), ("compiled_mae_b16", mae, True)]:
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
        out[name] = table(train_step(torch.compile(m), x2, y2, opt, is_mae))
    for name, t in out.items():
        with open(os.path.join(args.out, f"profile_{name}.txt"), "w") as f:
            f.write(t)
        print(f"===== {name}\n{t}")


if __name__ == "__main__":
    main()
