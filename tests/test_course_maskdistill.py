"""Graded test of the course assignment `maskdistill` that test_maskdistill.py did not have: MaskDistill's objective
(Eq. 1 / Eq. 3) recomputed from open_clip's own tokens (last block, or ln_post @ proj), not from the code under test."""
import pytest
import torch
import torch.nn.functional as F

import maskdistill as md


@pytest.mark.parametrize("target", ["raw", "proj"])
def test_objective_is_smooth_l1_to_layernormed_open_clip_tokens(tiny_clip, target):
    oc, path = tiny_clip
    args = md.get_args(["--model", "maskdistill_vit_test", "--teacher_pretrained", path, "--target", target,
                        "--target_norm", "ln", "--loss", "smooth_l1", "--smooth_l1_beta", "1.0"])
    torch.manual_seed(0)
    model, teacher = md.build(args)
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, 32, 32, generator=g)                      # [0, 1], the teacher's 32 px
    mask = torch.rand(4, 16, generator=g) < 0.4                       # (B, N) True = masked
    mask[0, :3] = True
    loss = md.maskdistill_loss(model, teacher, imgs, mask, args)
    loss.backward()
    assert model.head.weight.grad is not None and all(p.grad is None for p in teacher.parameters())
    seen = {}
    hook = oc.visual.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.update(raw=o))
    oc.visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = oc.visual(md.normalize_image(imgs, "clip"))   # T: CLIP's own mean/std on the full image
    finally:
        oc.visual.output_tokens = False
        hook.remove()
    with torch.no_grad():
        t = seen["raw"][:, 1:] if target == "raw" else tokens @ oc.visual.proj   # last block / ln_post @ proj (EVA)
        target = F.layer_norm(t, t.shape[-1:], eps=1e-6)              # N: LayerNorm without affine (Eq. 3)
        pred = model(md.normalize_image(imgs, "imagenet"), mask)      # H(S(x masked)): ImageNet mean/std for the student
        want = F.smooth_l1_loss(pred[mask], target[mask], beta=1.0)   # L: on the masked tokens only (Eq. 3)
    torch.testing.assert_close(loss.detach(), want, atol=1e-5, rtol=1e-5)
