"""finetune.py / weights.py against timm itself: an exported fine-tuning loads into timm's VisionTransformer and
Beit with strict=True and gives the same logits (FT-CLIP's and MAE's heads, BEiT's q/v bias, layer scale and
relative positions). INSTRUCTOR-ONLY: tests/reference/ never goes into a handout (timm computes the answers)."""
from dataclasses import asdict

import pytest
import torch

import weights
from finetune import build_model, get_args
from test_finetune import _encoder, _timm_vit, ft_run  # noqa: F401 (ft_run: a fixture)
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig, create_model


def test_export_loads_into_timm_strict_with_the_same_logits(ft_run, tmp_path, capsys):
    run, _ = ft_run
    best = torch.load(run / "checkpoint-best.pt", weights_only=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for flag, key, which in [([], "ema", "EMA"), (["--raw"], "model", "raw")]:
        out = tmp_path / f"{key}.pth"
        weights.main(["export", str(run / "checkpoint-best.pt"), "--out", str(out), *flag])
        assert f"[export] {which} weights of" in capsys.readouterr().out
        _, kw = weights.timm_state_dict(create_model("vit_test", global_pool="avg"))
        # MAE's head (mean over patches, then LN) is timm's global_pool='avg' with fc_norm=True
        assert (kw["global_pool"], kw["fc_norm"], kw["num_classes"], kw["img_size"]) == ("avg", True, 10, 32)
        timm_model = _timm_vit(kw)
        timm_model.load_state_dict(torch.load(out, weights_only=True), strict=True)
        ours = ViT(ViTConfig(**{**VIT_PRESETS["vit_test"], "global_pool": "avg"})).eval()
        ours.load_state_dict(best[key])
        with torch.no_grad():
            assert (timm_model(x) - ours(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("kind", ["ft_clip", "beit_student_token"])
def test_timm_state_dict_matches_timm_for_clip_heads_and_qv_bias_layer_scale(tmp_path, tiny_clip, kind):
    if kind == "ft_clip":       # FT-CLIP: LN per patch token, then mean -> timm global_pool='avg', fc_norm=False
        model = build_model(get_args(["--model", "clip_test", "--pretrained", tiny_clip[1], "--output_dir", str(tmp_path)]), 10)
        expect = dict(global_pool="avg", fc_norm=False, pre_norm=True, act_layer="quick_gelu", norm_eps=1e-5)
    else:                       # BEiT-style q/v bias + layer scale, cls-token head (no RPE: that would be timm's Beit)
        model = ViT(ViTConfig(**{**VIT_PRESETS["vit_test"], "qv_bias": True, "layer_scale": 0.1, "global_pool": "token"}))
        expect = dict(global_pool="token", fc_norm=False, init_values=0.1, qkv_bias=True, norm_eps=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)                                 # no zero q/v biases or unit LNs to hide behind
    model.eval()
    sd, kw = weights.timm_state_dict(model)
    assert {k: kw[k] for k in expect} == expect
    timm_model = _timm_vit(kw)
    timm_model.load_state_dict(sd, strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (timm_model(x) - model(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("kind", ["per_block", "shared", "qkv_bias_ln_avg"])
def test_export_of_a_maskdistill_student_loads_into_timm_beit_strict_with_the_same_logits(tmp_path, capsys, kind):
    """The maskdistill_vit_* recipe (q/v bias, layer scale, absolute positions + one RPE table per block, mean pool +
    fc_norm) is timm's Beit (BEiT's modeling_finetune.py); --shared_rel_pos_bias is Beit's use_shared_rel_pos_bias; a
    qkv bias becomes Beit's q/v biases (the k bias cancels in the softmax) and FT-CLIP's head is use_fc_norm=False."""
    from timm.models.beit import Beit
    _encoder(tmp_path / "student.pt", rel_pos_bias=True, qv_bias=kind != "qkv_bias_ln_avg", layer_scale=0.1, mask_token=True)
    extra = {"per_block": [], "shared": ["--shared_rel_pos_bias"], "qkv_bias_ln_avg": ["--global_pool", "ln_avg"]}[kind]
    args = get_args(["--model", "maskdistill_vit_base_patch16", "--arch", "vit_test", "--init", str(tmp_path / "student.pt"),
                     "--img_size", "32", "--output_dir", str(tmp_path), *extra])
    model = build_model(args, 10)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)                                 # distinct tables, q/v biases, gammas, head
    model.eval()
    torch.save({"model": model.state_dict(), "args": {"arch": "vit_test", "vit_config": asdict(model.cfg)}, "epoch": 9},
               tmp_path / "ckpt.pt")
    weights.main(["export", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "beit.pth")])
    assert "load with timm.models.beit.Beit(**{" in capsys.readouterr().out
    shared = kind == "shared"
    ref = Beit(img_size=32, patch_size=8, num_classes=10, embed_dim=64, depth=2, num_heads=2, init_values=0.1,
               use_abs_pos_emb=True, use_rel_pos_bias=not shared, use_shared_rel_pos_bias=shared,
               use_fc_norm=kind != "qkv_bias_ln_avg").eval()                   # timm's LayerNorm: eps 1e-6, as ours
    ref.load_state_dict(torch.load(tmp_path / "beit.pth", weights_only=True), strict=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ref(x) - model(x)).abs().max() <= 1e-4
    per_block = ref.blocks[1].attn.relative_position_bias_table
    assert (per_block is None) == shared and (ref.rel_pos_bias is not None) == shared


