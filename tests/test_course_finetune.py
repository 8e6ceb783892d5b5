"""Graded tests of the course assignment `finetune` that test_finetune.py / test_vit.py did not have: the
pooled heads against timm's VisionTransformer (its outputs stored in tests/fixtures/finetune.pt), and the head
initializations of MAE and FT-CLIP by their statistics."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from expect import came, fill_, fixture
from finetune import init_head
from vit import create_model

FINETUNE = fixture("finetune")


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_token_and_avg_pooling_equal_timm(pool):
    vt = pytest.importorskip("timm.models.vision_transformer")
    ref = fill_(vt.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10,
                                     global_pool=pool), 71)   # avg: mean of the patch tokens, then fc_norm (MAE)
    ours = create_model("vit_test", global_pool=pool).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    f = FINETUNE[f"pool_{pool}"]                                  # timm's outputs for these weights and images
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(f["x_seed"]))
    with torch.no_grad():
        logits, feats = ours(x), ours.forward_head(ours.forward_features(x), pre_logits=True)
    torch.testing.assert_close(logits, f["logits"], atol=1e-5, rtol=1e-4, msg=lambda m: (
        f"MAE App. A.1: global_pool '{pool}': expected timm's VisionTransformer logits ('avg': fc_norm(mean of "
        f"the patch tokens), cls dropped); {came(logits, f['logits'])}\n{m}"))
    torch.testing.assert_close(feats, f["pre_logits"], atol=1e-5, rtol=1e-4, msg=lambda m: (
        f"MAE App. A.1: global_pool '{pool}': expected timm's pooled features (pre_logits); "
        f"{came(feats, f['pre_logits'])}\n{m}"))


def test_head_init_ftclip_and_mae():
    torch.manual_seed(0)
    D, K = 768, 1000
    ft = nn.Linear(D, K)
    init_head(ft, 0.02, 1e-3)                                     # FT-CLIP / BEiT: trunc-normal(0.02) x 0.001
    assert ft.weight.std().item() == pytest.approx(0.02 * 1e-3, rel=0.03), (
        f"FT-CLIP §2.1: expected weight std 0.02 x 0.001 = 2e-05 +- 3%, got {ft.weight.std().item():.3g}")
    # nn.Linear's default bias U(-1/sqrt(D), 1/sqrt(D)), x 0.001
    bound = 1e-3 / math.sqrt(D)
    bias_max, bias_std = ft.bias.abs().max().item(), ft.bias.std().item()
    assert bias_max <= bound and bias_std == pytest.approx(bound / math.sqrt(3), rel=0.15), (
        f"FT-CLIP §2.1: expected bias U(-1/sqrt(D), 1/sqrt(D)) x 0.001: |bias| <= {bound:.3g}, std "
        f"{bound / math.sqrt(3):.3g} +- 15%, got max {ft.bias.abs().max().item():.3g}, std "
        f"{ft.bias.std().item():.3g}")
    mae = nn.Linear(D, K)
    # MAE main_finetune: trunc-normal(2e-5), zero bias
    init_head(mae, 2e-5, 1.0)
    assert mae.weight.std().item() == pytest.approx(2e-5, rel=0.03) and not mae.bias.any(), (
        "MAE App. A.1: scale 1: expected weight std 2e-05 +- 3% and a zero bias, got std "
        f"{mae.weight.std().item():.3g}, max |bias| {mae.bias.abs().max().item():.3g}")
    x, y = torch.randn(256, D), torch.randint(0, K, (256,))
    # the classifier starts near zero: loss = ln K
    for head, who in ((ft, "FT-CLIP §2.1"), (mae, "MAE App. A.1")):
        with torch.no_grad():
            loss = F.cross_entropy(head(x), y).item()
            assert loss == pytest.approx(math.log(K), abs=0.01), (
                f"{who}: expected a near-zero classifier at init, cross-entropy ln 1000 = 6.908 +- 0.01, got "
                f"{loss:.4f}")
