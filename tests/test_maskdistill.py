"""maskdistill.py: each piece of Eq. 1 (teacher T, normalization N, student S, head H, loss L, masks) against
the paper / open_clip, then the real CLI end to end (loss falls, exact resume, 2-process gloo, MAE teacher,
fine-tuning the student). CPU, tiny models, 32 px."""
import argparse
import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

import engine
import maskdistill as md
import weights
from expect import brief, came, fill_, fixture
from vit import ViT, ViTConfig, create_model
from weights import load_pretrained, resize_pos_embed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


MASKDISTILL = fixture("maskdistill")     # the reference code's outputs (tests/reference/fixtures.py)


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is faster, and immune to other jobs sharing the 2 cores (measured:
    the CLI test 1.4 s with 1 thread, 14-50 s with 2 on a loaded box). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _args(*extra):
    return md.get_args(["--model", "maskdistill_vit_test", *extra])


def _tiny(tiny_clip, *extra):
    """(args, model, teacher) of the test preset with the tiny CLIP file as the teacher's weights."""
    args = _args("--teacher_pretrained", tiny_clip[1], *extra)
    torch.manual_seed(0)
    model, teacher = md.build(args)
    return args, model, teacher


def _batch(args, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.rand(B, 3, args.img_size, args.img_size, generator=g)
    return imgs, md.MaskCollate((4, 4), args.num_mask_patches, args.min_mask_patches)([(im, 0) for im in imgs])[1]


def _losses(output_dir):
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        return {row["step"]: row["loss"] for row in map(json.loads, f)}


def _cli(tiny_clip, out, *extra):
    return ["--model", "maskdistill_vit_test", "--teacher_pretrained", tiny_clip[1], "--data", "shapes",
            "--output_dir", str(out), "--log_every", "1", "--num_workers", "0", *extra]


# ----------------------------------------------------------------------------- T: teacher


def test_teacher_gets_no_gradient_and_is_outside_optimizer_and_ddp(tiny_clip, tmp_path):
    args, model, teacher = _tiny(tiny_clip)
    teacher_ids = {id(p) for p in teacher.parameters()}
    model_ids = {id(p) for p in model.parameters()}
    assert teacher_ids and not teacher_ids & model_ids
    opt = md.build_optimizer(model, args)
    opt_ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert opt_ids == model_ids                                   # S + H exactly; T never in the optimizer
    model.train()
    teacher.train()                                               # ignored: a teacher is always in eval
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    imgs, mask = _batch(args)
    md.maskdistill_loss(model, teacher, imgs, mask, args).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in model.parameters())   # incl. mask token, RPE table, head
    # the module DDP wraps (a real 1-process gloo group) holds S + H and nothing of T
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ctx = engine.Context(rank=0, local_rank=0, world_size=2, device=torch.device("cpu"), precision="fp32")
        args.compile = False
        wrapped = engine.wrap_model(model, ctx, args)
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        assert {id(p) for p in wrapped.parameters()} == model_ids
        assert not any(m is teacher.vit for m in wrapped.modules())
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("student, teacher, teacher_img, n_tokens, width", [
    ("vit_base_patch16", "clip_b16", 224, 196, 768),     # MaskDistill Table 2: B/16 student, CLIP-B/16 teacher
    ("vit_base_patch16", "clip_l14", 196, 196, 1024),    # §4.1: CLIP-L/14 fed 196 px for a /16 student at 224
    ("eva_g14", "clip_l14", 224, 256, 1024),             # EVA §2.2 / ViT-H/14: 16 x 16 tokens for both
])
def test_teacher_and_student_token_grids_match(student, teacher, teacher_img, n_tokens, width):
    with torch.device("meta"):                            # shapes only: no memory, no time
        s = md.build_student(student, 224)
        t = md.build_teacher(teacher, "random", s.patch_embed.grid_size)      # default target: ln_post @ proj
        model = md.MaskDistill(s, t.out_dim)
        x = torch.empty(2, 3, 224, 224)
        target, pred = t(x), model(x, torch.zeros(2, n_tokens, dtype=torch.bool))
        raw_dim = md.build_teacher(teacher, "random", s.patch_embed.grid_size, "raw").out_dim
    proj_dim = 512 if teacher == "clip_b16" else 768                          # BEiT v2 VQ-KD / EVA / iTPN width
    assert t.img_size == teacher_img and target.shape == pred.shape == (2, n_tokens, proj_dim)
    assert t.target == "proj" and raw_dim == width


@pytest.mark.parametrize("target", ["raw", "ln", "proj"])
def test_target_tokens_equal_open_clip(tiny_clip, tmp_path, target):
    f = MASKDISTILL["teacher_clip"]                               # open_clip's own tokens for these weights
    oc = copy.deepcopy(tiny_clip[0])
    fill_(oc.visual, f["w_seed"])
    torch.save(oc.state_dict(), tmp_path / "clip.pt")
    teacher = md.build_teacher("clip_test", str(tmp_path / "clip.pt"), (4, 4), target)
    imgs = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(f["x_seed"]))
    got = teacher(imgs)
    what = {"raw": "the last block's patch tokens (no ln_post)", "ln": "ln_post(patch tokens)",
            "proj": "ln_post(patch tokens) @ proj"}[target]
    torch.testing.assert_close(got, f[target], atol=1e-5, rtol=1e-5, msg=lambda m: (
        f"MaskDistill §3 / EVA §2.2: target '{target}': expected open_clip's {what}, cls dropped, of the "
        f"CLIP-normalized images; {came(got, f[target])}\n{m}"))
    # a larger crop is resized to the teacher's 32 px (bicubic, antialiased) before normalization
    big = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    small = F.interpolate(big, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    got_big, got_small = teacher(big), teacher(small)
    torch.testing.assert_close(got_big, got_small, atol=0, rtol=0, msg=lambda m: (
        "MaskDistill §4.1: expected a 64 px input resized to the teacher's 32 px (bicubic, "
        f"align_corners=False, antialias=True, clamp 0..1) before normalizing; {came(got_big, got_small)}\n{m}"))


def _beit2_resize(table, grid):
    """BEiT v2 vqkd_teacher/clip/model.py interpolate_pos_encoding, written out with its arguments:
    table (1+g*g, D) -> (1, 1+G*G, D), bicubic, scale_factor (G + 0.1) / g, align_corners / recompute unset."""
    g, D = int(math.sqrt(table.shape[0] - 1)), table.shape[1]
    patch = table[1:].reshape(1, g, g, D).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((grid + 0.1) / g, (grid + 0.1) / g), mode="bicubic")
    return torch.cat([table[:1].unsqueeze(0), patch.permute(0, 2, 3, 1).reshape(1, -1, D)], dim=1)


def test_teacher_pos_embed_resize_follows_beit2_scale_factor(tiny_clip):
    # §4.1's case: CLIP-L/14's 16 x 16 table for 196 px (14 x 14); a smooth table, like a trained one
    r = torch.arange(16.0)
    grid16 = torch.stack([torch.sin(r[:, None] / 3 + k) * torch.cos(r[None, :] / 4 - k) for k in range(8)], -1)
    table = torch.cat([torch.randn(1, 8), grid16.reshape(256, 8)])                     # (257, D)
    ours = weights.resize_teacher_pos_embed(table[None], (14, 14))
    torch.testing.assert_close(ours, _beit2_resize(table, 14), atol=0, rtol=0)
    exact = weights.resize_pos_embed(table[None], (14, 14))
    assert ours.shape == exact.shape == (1, 197, 8) and torch.equal(ours[:, 0], exact[:, 0])   # cls row kept
    assert torch.equal(weights.resize_teacher_pos_embed(table[None], (14, 14), "exact"), exact)
    rel = (ours - exact)[0, 1:].norm(dim=-1) / exact[0, 1:].norm(dim=-1)                # per position
    assert 0.002 < float(rel.mean()) < 0.05, float(rel.mean())
    # through the CLI: a 24 px student (3 x 3 grid) gets the tiny CLIP's 4 x 4 table resized BEiT v2's way
    oc_table = tiny_clip[0].visual.positional_embedding.detach()
    _, _, teacher = _tiny(tiny_clip, "--img_size", "24")
    assert teacher.img_size == 24
    torch.testing.assert_close(teacher.vit.pos_embed.detach(), _beit2_resize(oc_table, 3), atol=0, rtol=0)
    _, _, exact_teacher = _tiny(tiny_clip, "--img_size", "24", "--teacher_pos_resize", "exact")
    torch.testing.assert_close(exact_teacher.vit.pos_embed.detach(), resize_pos_embed(oc_table[None], (3, 3)))
    assert not torch.allclose(exact_teacher.vit.pos_embed, teacher.vit.pos_embed, atol=1e-4)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_openai_style_torchscript_weights_load(tiny_clip, tmp_path):
    oc, path = tiny_clip
    scripted = torch.jit.trace(oc.visual, torch.rand(1, 3, 32, 32), check_trace=False)   # like OpenAI's clip .pt
    torch.jit.save(scripted, str(tmp_path / "clip_ts.pt"))
    imgs = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(md.build_teacher("clip_test", str(tmp_path / "clip_ts.pt"), (4, 4), "ln")(imgs),
                               md.build_teacher("clip_test", path, (4, 4), "ln")(imgs), atol=0, rtol=0)


def test_mae_encoder_teacher_from_encoder_pt(tmp_path):
    f = MASKDISTILL["teacher_mae"]                                # the encoder's blocks, before / after its norm
    enc = fill_(create_model("vit_test", pos_embed="sincos", num_classes=0), f["w_seed"])   # what mae.py saves
    path = str(tmp_path / "encoder.pt")
    engine.save_encoder(path, enc, enc.cfg, "mae.py", argparse.Namespace())
    teacher = md.build_teacher(path, "ignored", (4, 4), "raw")
    assert teacher.mean_std == "imagenet" and teacher.out_dim == 64, (
        f"MaskDistill §4.1: an MAE encoder teacher: expected ImageNet mean/std and width 64, got "
        f"{teacher.mean_std}, {teacher.out_dim}")
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(f["x_seed"]))
    got = teacher(imgs)
    torch.testing.assert_close(got, f["raw"], atol=1e-5, rtol=1e-5, msg=lambda m: (
        "MaskDistill §3: target 'raw': expected the encoder's blocks without the final norm on the "
        f"ImageNet-normalized images, cls dropped; {came(got, f['raw'])}\n{m}"))
    # no proj in an MAE encoder: the default target falls back to its output features, the final-norm tokens
    fallback = md.build_teacher(path, "ignored", (4, 4))
    assert fallback.target == "ln" and fallback.out_dim == 64, (
        "MaskDistill §3: no proj: expected the target to fall back to 'ln' (width 64), got "
        f"{fallback.target} ({fallback.out_dim})")
    got = fallback(imgs)
    torch.testing.assert_close(got, f["ln"], atol=1e-5, rtol=1e-5, msg=lambda m: (
        "MaskDistill §3: target 'ln': expected the blocks, then vit.norm (the MAE encoder's output), cls "
        f"dropped; {came(got, f['ln'])}\n{m}"))


def test_bad_teacher_inputs_are_one_line_system_exits(tiny_clip, tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        md.build_teacher("clip_test", str(tmp_path / "missing.pt"), (4, 4))
    with pytest.raises(SystemExit, match="no such file.*mae.py"):
        md.build_teacher(str(tmp_path / "nope" / "encoder.pt"), "openai", (4, 4))
    with pytest.raises(SystemExit, match="does not fit clip_b16"):                 # tiny weights into a B/16
        md.build_teacher("clip_b16", tiny_clip[1], (14, 14))
    with pytest.raises(SystemExit, match="via open_clip.*--teacher_pretrained"):   # unknown tag, offline
        md.build_teacher("clip_test", "no-such-tag", (4, 4))


# ----------------------------------------------------------------------------- N: normalization


def test_target_norm_is_layer_norm_without_affine_biased_variance():
    # a hand-computed token: mean 2.5, biased variance 1.25 -> (x - 2.5) / sqrt(1.25 + 1e-6), no weight, no bias
    # (the unbiased variance 5/3 would give -1.1619, -0.3873, ...)
    hand = md.normalize_target(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]), "ln")
    want = torch.tensor([[[-1.3416402, -0.4472134, 0.4472134, 1.3416402]]])
    torch.testing.assert_close(hand, want, atol=1e-6, rtol=0, msg=lambda m: (
        "MaskDistill Eq. 3: 'ln' of the token [1, 2, 3, 4]: expected (x - 2.5) / sqrt(1.25 + 1e-6) (biased "
        f"variance, no affine); {came(hand, want)}\n{m}"))
    assert hand.dtype == torch.float32, f"MaskDistill Eq. 3: expected fp32, got {hand.dtype}"
    t = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0)) * 3 + 7
    n = md.normalize_target(t, "ln")
    torch.testing.assert_close(n.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0, msg=lambda m: (
        "MaskDistill Eq. 3: 'ln': expected mean 0 over each token's channels; "
        f"{came(n.mean(-1), torch.zeros(2, 5))}\n{m}"))
    var = n.var(-1, unbiased=False)
    torch.testing.assert_close(var, torch.ones(2, 5), atol=1e-5, rtol=0, msg=lambda m: (
        f"MaskDistill Eq. 3: 'ln': expected (biased) variance 1 over each token's channels; "
        f"{came(var, torch.ones(2, 5))}\n{m}"))
    b = md.normalize_target(t, "bn")                                          # Table 8: per channel over tokens
    torch.testing.assert_close(b.mean((0, 1)), torch.zeros(16), atol=1e-5, rtol=0, msg=lambda m: (
        f"MaskDistill Table 8: 'bn': expected mean 0 per channel over (B, N); "
        f"{came(b.mean((0, 1)), torch.zeros(16))}\n{m}"))
    bvar = b.var((0, 1), unbiased=False)
    torch.testing.assert_close(bvar, torch.ones(16), atol=1e-4, rtol=0, msg=lambda m: (
        f"MaskDistill Table 8: 'bn': expected (biased) variance 1 per channel over (B, N); "
        f"{came(bvar, torch.ones(16))}\n{m}"))
    same = md.normalize_target(t, "none")
    assert torch.equal(same, t), f"EVA §2.2: 'none': expected the target unchanged; {came(same, t)}"


# ----------------------------------------------------------------------------- S: student


def test_student_has_beit_bits_732_row_shared_rpe_and_beit_init():
    torch.manual_seed(0)
    s = md.build_student("vit_base_patch16", 224, depth=2)                    # 14 x 14 grid, 12 heads
    rpb = s.rel_pos_bias
    assert rpb.relative_position_bias_table.shape == (732, 12)               # (2*14-1)^2 + 3
    idx = rpb.relative_position_index
    assert idx.shape == (197, 197) and int(idx.min()) == 0 and int(idx.max()) == 731
    assert int(idx[0, 5]) == 729 and int(idx[5, 0]) == 730 and int(idx[0, 0]) == 731   # cls rows / cols
    assert int(idx[1, 1]) == int(idx[100, 100]) == 13 * 27 + 13              # zero offset, anywhere
    assert s.mask_token is not None and s.pos_embed is not None and s.cfg.num_classes == 0
    assert s.blocks[0].attn.q_bias is not None and s.blocks[0].attn.qkv.bias is None
    assert torch.equal(s.blocks[1].gamma_1, torch.full((768,), 0.1))         # App. A: layer scale 0.1 (base)
    # BEiT init: trunc-normal(0.02) cut at +-0.02, then block l's attn.proj / mlp.fc2 divided by sqrt(2l)
    assert 0.019 < float(s.blocks[0].attn.qkv.weight.detach().abs().max()) <= 0.02
    for layer, blk in enumerate(s.blocks, start=1):
        for w in [blk.attn.proj.weight, blk.mlp.fc2.weight]:
            bound = 0.02 / math.sqrt(2 * layer)
            assert 0.95 * bound < float(w.detach().abs().max()) <= bound + 1e-9
    assert md.build_student("vit_test", abs_pos_emb=False).pos_embed is None   # BEiT v2's code: RPE only


def test_weight_decay_groups_follow_beit2_mask_token_decayed(tiny_clip):
    args, model, _ = _tiny(tiny_clip)
    groups = md.build_optimizer(model, args).param_groups
    decayed = {n for g in groups if g["weight_decay"] > 0 for n in g["param_names"]}
    exempt = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    assert all(g["weight_decay"] == args.weight_decay for g in groups if g["weight_decay"] > 0)
    # BEiT v2 optim_factory.get_parameter_groups with modeling_pretrain's no_weight_decay {pos_embed, cls_token},
    # written out for S + H's names (the student is `student.`): 1-D, biases and those two are not decayed
    rule = {n for n, p in model.named_parameters()
            if p.ndim <= 1 or n.endswith(".bias") or n in ("student.pos_embed", "student.cls_token")}
    assert exempt == rule and decayed == {n for n, _ in model.named_parameters()} - rule
    assert {"student.mask_token", "student.rel_pos_bias.relative_position_bias_table", "head.weight"} <= decayed
    assert {"student.cls_token", "student.pos_embed", "student.blocks.0.gamma_1", "head.bias"} <= exempt


# ----------------------------------------------------------------------------- L: loss


@pytest.mark.parametrize("kind", ["smooth_l1", "mse", "cosine"])
def test_loss_ignores_unmasked_positions_and_is_minimal_at_target(kind):
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 16, 8, generator=g), torch.randn(2, 16, 8, generator=g)
    mask = torch.rand(2, 16, generator=g) < 0.4
    loss = md.mim_loss(pred, target, mask, kind)
    changed = torch.where(mask.unsqueeze(-1), pred, pred + 100 * torch.randn(2, 16, 8, generator=g))
    other = md.mim_loss(changed, target, mask, kind)
    assert torch.equal(other, loss), (
        f"MaskDistill Eq. 3: '{kind}': expected the loss to ignore the unmasked tokens (mask False); got "
        f"{float(other):.6g} after changing them, {float(loss):.6g} before")
    best = md.mim_loss(target.clone(), target, mask, kind)
    assert float(best) == pytest.approx(-1.0 if kind == "cosine" else 0.0, abs=1e-6), (
        f"MaskDistill Eq. 3 / EVA §2.2: '{kind}': expected {-1.0 if kind == 'cosine' else 0.0} for a perfect "
        f"prediction, got {float(best):.6g}")
    every = float(md.mim_loss(pred, target, None, kind))
    assert every != pytest.approx(float(loss)), (                             # None = all tokens
        f"MaskDistill Table 5: '{kind}': expected mask=None to use all tokens (a different loss), got the "
        f"same {every:.6g}")


def test_smooth_l1_is_quadratic_below_beta_and_linear_above():
    def one(d, beta):                                              # one masked token, one channel
        return float(md.mim_loss(torch.tensor([[[d]]]), torch.zeros(1, 1, 1), None, "smooth_l1", beta))
    for d, beta, want in [(0.5, 1.0, 0.125), (2.0, 1.0, 1.5), (1.0, 2.0, 0.25), (3.0, 2.0, 2.0),
                          (-3.0, 2.0, 2.0)]:
        # 0.5 d^2 / beta below beta, |d| - 0.5 beta above
        assert one(d, beta) == pytest.approx(want), (
            f"MaskDistill Eq. 3: smooth-l1 of d = {d} with beta = {beta}: expected {want} (0.5 d^2 / beta if "
            f"|d| < beta, else |d| - 0.5 beta), got {one(d, beta):.6g}")
    # the documented default
    beta = _args().smooth_l1_beta
    assert beta == 1.0, f"MaskDistill Eq. 3: expected the default beta 1.0, got {beta}"


def test_cosine_loss_is_minus_one_for_identical_vectors():
    v = torch.randn(1, 3, 8)
    for scale, want in [(1.0, -1.0), (2.5, -1.0), (-1.0, 1.0)]:                # scale-free; opposite: +1
        got = float(md.mim_loss(scale * v, v, None, "cosine"))
        assert got == pytest.approx(want, abs=1e-6), (
            f"EVA §2.2: cosine loss of {scale} x target: expected minus the mean cosine = {want}, got "
            f"{got:.6g}")
    # by hand, two tokens of two channels: cosines 1 (token 0) and 0 (token 1), per token -> -0.5
    pred, target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]), torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    got = float(md.mim_loss(pred, target, None, "cosine"))
    assert got == pytest.approx(-0.5, abs=1e-6), (
        "EVA §2.2: expected the cosine of each token's vector (over channels), averaged over tokens: "
        f"-(1 + 0) / 2 = -0.5, got {got:.6g}")


def test_empty_mask_gives_zero_loss_not_nan_and_backward_works():
    pred = torch.randn(2, 16, 8, requires_grad=True)
    for kind in ["smooth_l1", "mse", "cosine"]:
        loss = md.mim_loss(pred, torch.randn(2, 16, 8), torch.zeros(2, 16, dtype=torch.bool), kind)
        assert float(loss.detach()) == 0.0, (
            f"MaskDistill Eq. 3: '{kind}', nothing masked: expected 0 (the sum of the empty selection), got "
            f"{float(loss.detach())}")
        loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred)), (
        "MaskDistill Eq. 3: nothing masked: expected backward to work and give zero gradients; got "
        f"{brief(pred.grad)}")


# ----------------------------------------------------------------------------- masks and presets


def test_collate_masks_exactly_75_of_196_per_image_deterministically():
    samples = [(torch.zeros(3, 8, 8), 0)] * 8
    collate = md.MaskCollate((14, 14), 75, min_num_patches=16, exact=True)   # BEiT v2 generator
    torch.manual_seed(0)
    imgs, mask = collate(samples)
    assert imgs.shape == (8, 3, 8, 8) and mask.shape == (8, 196) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [75] * 8
    torch.manual_seed(0)
    assert torch.equal(collate(samples)[1], mask)                             # global RNG: reseeded -> same masks
    eva = md.MaskCollate((16, 16), 105, exact=False)(samples)[1]              # EVA: BEiT v1, at most 105
    assert (eva.sum(1) <= 105).all() and (eva.sum(1) > 80).all()


def test_presets_follow_appendix_a_and_eva():
    base = md.get_args(["--model", "maskdistill_vit_base_patch16"])
    assert (base.num_mask_patches, base.lr, base.betas, base.weight_decay, base.clip_grad, base.min_lr) == \
        (75, 1.5e-3 * 128 / 2048, (0.9, 0.999), 0.05, 3.0, 1e-5)
    assert (base.layer_scale, base.drop_path, base.target, base.target_norm, base.loss, base.color_jitter) == \
        (0.1, 0.1, "proj", "ln", "smooth_l1", 0.4)
    assert base.teacher_pos_resize == "beit2"
    large = md.get_args(["--model", "maskdistill_vit_large_patch16", "--accum_iter", "16"])
    assert (large.teacher, large.layer_scale, large.drop_path, large.lr) == ("clip_l14", 1e-5, 0.2, 1.5e-3)
    huge = md.get_args(["--model", "maskdistill_vit_huge_patch14"])
    # one rule for every grid: BEiT v2's 75 of 196, the same fraction of 16 x 16 = 256
    assert (huge.num_mask_patches, huge.layer_scale, huge.drop_path) == (98, 1e-5, 0.25)
    assert md.mask_count(14) == 75 and md.mask_count(16) == 98
    eva = md.get_args(["--model", "eva_g14"])
    assert (eva.target, eva.target_norm, eva.loss, eva.num_mask_patches, eva.exact_mask, eva.rel_pos_bias,
            eva.layer_scale, eva.betas, eva.student_mean_std) == ("proj", "none", "cosine", 105, False, False, 0.0,
                                                                 (0.9, 0.98), "clip")
    assert md.get_args(["--model", "maskdistill_vit_base_patch16", "--mask_ratio", "0.4"]).num_mask_patches == 78
    assert md.get_args(["--model", "maskdistill_vit_mini"]).num_mask_patches == 26


def test_print_args_is_json_with_resolved_mask_count(capsys):
    with pytest.raises(SystemExit) as e:
        md.get_args(["--model", "maskdistill_vit_test", "--mask_ratio", "0.5", "--print_args"])
    assert e.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_mask_patches"] == 8 and out["teacher"] == "clip_test"


# ----------------------------------------------------------------------------- the real CLI


def test_cli_loss_falls_and_the_student_fine_tunes(tiny_clip, tmp_path):
    out = tmp_path / "run"
    md.main(_cli(tiny_clip, out, "--num_train", "256", "--batch_size", "32", "--epochs", "4", "--warmup_epochs", "1"))
    losses = list(_losses(out).values())
    assert len(losses) == 32
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.75 * first, (first, last)             # measured: 0.43 -> 0.29 (target proj)
    ckpt = torch.load(str(out / "encoder.pt"), weights_only=True)
    assert ckpt["source"] == "maskdistill.py" and ckpt["vit_config"]["rel_pos_bias"] and "mask_token" in ckpt["model"]
    try:
        import finetune
    except ImportError:
        finetune = None
    if finetune is not None:
        finetune.main(["--model", "vit_test", "--init", str(out / "encoder.pt"), "--data", "shapes",
                       "--output_dir", str(tmp_path / "ft"), "--num_workers", "0", "--max_steps", "1",
                       "--batch_size", "8", "--epochs", "1", "--num_train", "16", "--num_val", "16"])
    # what finetune.py --init does: the architecture from vit_config, the mask token dropped, a fresh head
    cfg = {**ckpt["vit_config"], "mask_token": False, "num_classes": 10, "global_pool": "avg"}
    dropped = load_pretrained(ViT(ViTConfig(**cfg)), ckpt["model"])
    assert "mask_token" in dropped


@pytest.mark.parametrize("workers", ["0", "2"])                            # 2: masks are drawn in the workers
def test_resume_is_bitwise_exact(tiny_clip, tmp_path, workers):
    common = ("--num_train", "64", "--epochs", "3", "--num_workers", workers)   # 4 steps per epoch
    md.main(_cli(tiny_clip, tmp_path / "straight", *common))
    md.main(_cli(tiny_clip, tmp_path / "split", *common, "--max_steps", "8"))      # "killed" after 2 epochs
    md.main(_cli(tiny_clip, tmp_path / "split", *common, "--resume", "auto"))
    straight, split = _losses(tmp_path / "straight"), _losses(tmp_path / "split")
    assert sorted(straight) == sorted(split) == list(range(1, 13))
    assert [split[s] for s in range(9, 13)] == [straight[s] for s in range(9, 13)]   # bitwise, not approx


def test_torchrun_two_processes_gloo_keep_identical_students(tiny_clip, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(REPO, "tests", "ddp_driver.py"), "maskdistill",
           *_cli(tiny_clip, out, "--num_train", "64", "--epochs", "1", "--batch_size", "8", "--device", "cpu")]
    r = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "2 process(es)" in r.stdout and len(_losses(out)) == 4 and os.path.isfile(out / "encoder.pt")
    a, b = torch.load(out / "rank0.pt"), torch.load(out / "rank1.pt")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)      # DDP kept the ranks in step
    assert not any(k.startswith("teacher") or ".vit." in k for k in a)      # the saved/trained module is S + H


def test_cli_with_an_mae_encoder_teacher(tmp_path, capsys):
    torch.manual_seed(0)
    enc = create_model("vit_test", pos_embed="sincos", num_classes=0)
    engine.save_encoder(str(tmp_path / "mae_encoder.pt"), enc, enc.cfg, "mae.py", argparse.Namespace())
    out = tmp_path / "run"
    md.main(["--model", "maskdistill_vit_test", "--teacher", str(tmp_path / "mae_encoder.pt"), "--data", "shapes",
             "--num_train", "32", "--output_dir", str(out), "--log_every", "1", "--max_steps", "2"])
    losses = _losses(out)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    assert "target ln (teacher has no proj) (Dt 64)" in capsys.readouterr().out      # the default's fallback, said
