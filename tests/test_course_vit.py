"""Graded tests of the course assignment `vit` (course/assignments.py) that test_vit.py did not have: each
piece against an independent reference (timm's modules, torch.nn.MultiheadAttention, the papers' formulas)."""
import math

import pytest
import torch
import torch.nn.functional as F

from vit import Attention, Block, PatchEmbed, ViTConfig, sincos_pos_embed_2d


def _randomize_(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def test_patch_embed_equals_timm_patch_embed():
    timm_layers = pytest.importorskip("timm.layers")
    ref = _randomize_(timm_layers.PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=16))
    ours = PatchEmbed(32, 8, 3, 16)
    ours.load_state_dict(ref.state_dict())                         # proj.weight, proj.bias
    x = torch.randn(2, 3, 32, 32)
    out = ours(x)
    assert out.shape == (2, 16, 16), f"ViT Eq. 1: expected (B, N, D) = (2, 16, 16), got {tuple(out.shape)}"
    torch.testing.assert_close(out, ref(x), msg=lambda m: f"ViT Eq. 1: expected timm's patch embedding\n{m}")
    # token 1 is the patch in row 0, column 1 (ViT Eq. 1 flattens the grid row by row)
    one = F.conv2d(x[:, :, 0:8, 8:16], ours.proj.weight, ours.proj.bias).flatten(1)
    torch.testing.assert_close(out[:, 1], one, msg=lambda m: (
        f"ViT Eq. 1: expected token 1 to be the patch at row 0, column 1 (patches row-major)\n{m}"))


def test_sincos_rows_and_columns_on_a_non_square_grid():
    D, Gh, Gw = 8, 2, 3
    pe = sincos_pos_embed_2d(D, Gh, Gw)
    assert pe.shape == (1 + Gh * Gw, D) and pe.dtype == torch.float32 and not pe[0].any(), (
        f"MAE App. A.1: expected a float32 (1 + Gh*Gw, D) = (7, 8) table with a zero cls row, got {pe.dtype} "
        f"{tuple(pe.shape)}, cls row {pe[0].tolist()}")
    no_cls = sincos_pos_embed_2d(D, Gh, Gw, cls_token=False)
    assert no_cls.shape == (Gh * Gw, D), (
        f"MAE App. A.1: cls_token=False: expected (6, 8), got {tuple(no_cls.shape)}")
    for i in range(Gh):
        for j in range(Gw):
            row = pe[1 + i * Gw + j].tolist()                     # token order: row-major over the grid
            for k in range(D // 4):
                w = 10000 ** (-k / (D // 4))
                want = {k: math.sin(j * w), D // 4 + k: math.cos(j * w),
                        D // 2 + k: math.sin(i * w), 3 * D // 4 + k: math.cos(i * w)}
                for c, v in want.items():
                    assert row[c] == pytest.approx(v, abs=1e-6), (
                        f"MAE App. A.1: patch row {i}, column {j} (token {1 + i * Gw + j}), channel {c}: "
                        f"expected {v:.6f} ({'sin' if c % (D // 2) < D // 4 else 'cos'} of the "
                        f"{'column' if c < D // 2 else 'row'}), got {row[c]:.6f}")


def _attention_by_formula(attn, x, bias=None):
    """ViT App. A Eq. 5-8, one head at a time: [q, k, v] = z U_qkv; A = softmax(q k^T / sqrt(Dh) + bias);
    A v; U_msa."""
    B, N, D = x.shape
    H = attn.num_heads
    Dh = D // H
    b_qkv = attn.qkv.bias if attn.q_bias is None else torch.cat([attn.q_bias, torch.zeros(D), attn.v_bias])
    # (B, N, 3D), columns q | k | v, heads inside each
    z = x @ attn.qkv.weight.T + b_qkv
    heads = []
    for h in range(H):
        # (B, N, Dh) each
        q, k, v = (z[..., part * D + h * Dh: part * D + (h + 1) * Dh] for part in range(3))
        logits = torch.einsum("bnd,bmd->bnm", q, k) / math.sqrt(Dh)
        if bias is not None:
            logits = logits + bias[h]
        heads.append(torch.softmax(logits, dim=-1) @ v)
    return torch.cat(heads, dim=-1) @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("fused", [True, False])
def test_attention_equals_the_formula_fused_and_written_out(fused):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    # (H, N, N), e.g. BEiT's relative position bias
    bias = torch.randn(4, 5, 5)
    for qv_bias in (False, True):
        attn = _randomize_(Attention(16, 4, qkv_bias=True, qv_bias=qv_bias, fused=fused), seed=int(qv_bias))
        with torch.no_grad():
            for b in (None, bias):
                torch.testing.assert_close(
                    attn(x, b), _attention_by_formula(attn, x, b), atol=1e-5, rtol=1e-4,
                    msg=lambda m: f"ViT App. A Eq. 5-8: fused={fused}, BEiT q/v bias {qv_bias}, attn_bias "
                                  f"{'given' if b is not None else 'None'}: expected softmax(q k^T / "
                                  f"sqrt(Dh) + bias) v per head, concatenated, then proj\n{m}")


@pytest.mark.parametrize("fused", [True, False])
def test_attention_equals_torch_multihead_attention(fused):
    torch.manual_seed(1)
    mha = _randomize_(torch.nn.MultiheadAttention(16, 4, batch_first=True), seed=2).eval()
    ours = Attention(16, 4, fused=fused)
    ours.load_state_dict({"qkv.weight": mha.in_proj_weight, "qkv.bias": mha.in_proj_bias,
                          "proj.weight": mha.out_proj.weight, "proj.bias": mha.out_proj.bias})
    x, bias = torch.randn(3, 7, 16), torch.randn(4, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), mha(x, x, x, need_weights=False)[0], atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f"ViT App. A Eq. 5-8: fused={fused}: expected "
                                                 f"torch.nn.MultiheadAttention's output\n{m}")
        # MHA: (B*H, N, N), added to logits
        mask = bias.unsqueeze(0).expand(3, -1, -1, -1).reshape(3 * 4, 7, 7)
        torch.testing.assert_close(ours(x, bias), mha(x, x, x, attn_mask=mask, need_weights=False)[0],
                                   atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f"ViT App. A Eq. 5-8: fused={fused}, attn_bias (H, N, N) "
                                                 "added to the logits: expected MultiheadAttention's "
                                                 f"output\n{m}")


@pytest.mark.parametrize("layer_scale", [0.0, 0.1])
def test_block_equals_timm_block_with_layer_scale(layer_scale):
    vt = pytest.importorskip("timm.models.vision_transformer")
    ref = _randomize_(vt.Block(16, 4, qkv_bias=True, init_values=layer_scale or None), seed=3).eval()
    ours = Block(16, 4, 64, ViTConfig(embed_dim=16, num_heads=4, layer_scale=layer_scale)).eval()
    sd = {k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2"): v
          for k, v in ref.state_dict().items()}
    # norm1, attn.qkv/proj, norm2, mlp.fc1/fc2 (+ gammas)
    ours.load_state_dict(sd)
    x, bias = torch.randn(2, 5, 16), torch.randn(4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f"ViT §3.1 Eq. 2-3: layer scale {layer_scale}: expected "
                                                 f"timm's Block output\n{m}")
        torch.testing.assert_close(ours(x, bias), ref(x, attn_mask=bias.unsqueeze(0)), atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f"ViT §3.1 Eq. 2-3: layer scale {layer_scale}, attn_bias "
                                                 f"passed to attn: expected timm's Block output\n{m}")
