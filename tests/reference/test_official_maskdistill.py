"""maskdistill.py's teacher against open_clip itself: the tiny CLIP and OpenAI CLIP-B/16's architecture, on the
same weights and images (the graded tests compare with these outputs stored: tests/fixtures/maskdistill.pt).
INSTRUCTOR-ONLY: tests/reference/ never goes into a handout."""
import pytest
import torch
import torch.nn.functional as F

import maskdistill as md
import weights


def _tiny(tiny_clip, *extra):
    args = md.get_args(["--model", "maskdistill_vit_test", "--teacher_pretrained", tiny_clip[1], *extra])
    torch.manual_seed(0)
    model, teacher = md.build(args)
    return args, model, teacher


@pytest.mark.parametrize("target", ["raw", "ln", "proj"])
def test_target_tokens_equal_open_clip(tiny_clip, target):
    oc, path = tiny_clip
    teacher = md.build_teacher("clip_test", path, (4, 4), target)
    imgs = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    visual, seen = oc.visual, {}
    hook = visual.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.update(raw=o))
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(md.normalize_image(imgs, "clip"))              # open_clip: ln_post(h)[:, 1:]
    finally:
        visual.output_tokens = False
        hook.remove()
    expect = {"raw": seen["raw"][:, 1:], "ln": tokens, "proj": tokens @ visual.proj}[target]
    what = {"raw": "the last block's patch tokens (no ln_post)", "ln": "ln_post(patch tokens)",
            "proj": "ln_post(patch tokens) @ proj"}[target]
    torch.testing.assert_close(teacher(imgs), expect, atol=1e-5, rtol=0, msg=lambda m: (
        f"MaskDistill §3 / EVA §2.2: target '{target}': expected open_clip's {what}, cls dropped\n{m}"))
    # a larger crop is resized to the teacher's 32 px (bicubic, antialiased) before normalization
    big = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    small = F.interpolate(big, size=(32, 32), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    torch.testing.assert_close(teacher(big), teacher(small), atol=0, rtol=0, msg=lambda m: (
        "MaskDistill §4.1: expected a 64 px input resized to the teacher's 32 px (bicubic, "
        f"align_corners=False, antialias=True, clamp 0..1) before normalizing\n{m}"))


def _open_clip_projected_tokens(visual, imgs):
    """open_clip's own computation of the default target: ln_post(tokens)[:, 1:] @ proj, (B, N, embed_dim)."""
    visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = visual(md.normalize_image(imgs, "clip"))              # ln_post(h)[:, 1:] (open_clip >= 2.23)
    finally:
        visual.output_tokens = False
    return tokens @ visual.proj


def test_default_target_is_open_clip_ln_post_tokens_at_proj(tiny_clip, openclip_b16, monkeypatch):
    # the tiny CLIP through the real CLI defaults (the test preset inherits App. A's target)
    args, model, teacher = _tiny(tiny_clip)
    assert args.target == "proj" and teacher.target == "proj"
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    expect = _open_clip_projected_tokens(tiny_clip[0].visual, imgs)
    assert expect.shape[-1] == teacher.out_dim == model.head.out_features == 32     # CLIP's embed_dim
    torch.testing.assert_close(teacher(imgs), expect, atol=1e-5, rtol=0)
    # OpenAI CLIP-B/16's architecture (random init) through the base preset's defaults: width 512
    base = md.get_args(["--model", "maskdistill_vit_base_patch16"])
    assert base.target == "proj"
    monkeypatch.setattr(weights, "read_clip_weights", lambda *a: openclip_b16.state_dict())   # no download
    t = md.build_teacher(base.teacher, "openai", (14, 14), base.target, base.teacher_mean_std)
    img = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    expect = _open_clip_projected_tokens(openclip_b16.visual, img)
    assert t.out_dim == openclip_b16.visual.output_dim == 512 and expect.shape == (1, 196, 512)
    torch.testing.assert_close(t(img), expect, atol=1e-4, rtol=0)


