"""mae.py against facebookresearch/mae's models_mae.py itself (rebuilt from timm's PatchEmbed and Block, with its
parameter names): the same weights, images and noise give the same masks, predictions and loss.
INSTRUCTOR-ONLY: tests/reference/ never goes into a handout (this file holds a complete MAE)."""
import pytest
import torch

import engine
from mae import create_mae
from weights import load_mae_checkpoint


class _OfficialMAE(torch.nn.Module):
    """facebookresearch/mae models_mae.MaskedAutoencoderViT rebuilt for the test from timm's PatchEmbed and Block,
    with its parameter names: the layout of the released full checkpoints (mae_visualize_vit_large.pth)."""

    def __init__(self, img=32, p=8, D=64, depth=2, heads=2, Dd=32, ddepth=1, dheads=2, norm_pix_loss=True):
        super().__init__()
        from functools import partial

        from timm.models.vision_transformer import Block, PatchEmbed
        ln = partial(torch.nn.LayerNorm, eps=1e-6)
        self.p, self.norm_pix_loss = p, norm_pix_loss
        self.patch_embed = PatchEmbed(img, p, 3, D)
        L = self.patch_embed.num_patches
        self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = torch.nn.Parameter(torch.zeros(1, L + 1, D), requires_grad=False)
        self.blocks = torch.nn.ModuleList([Block(D, heads, 4.0, qkv_bias=True, norm_layer=ln) for _ in range(depth)])
        self.norm = ln(D)
        self.decoder_embed = torch.nn.Linear(D, Dd)
        self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, Dd))
        self.decoder_pos_embed = torch.nn.Parameter(torch.zeros(1, L + 1, Dd), requires_grad=False)
        self.decoder_blocks = torch.nn.ModuleList([Block(Dd, dheads, 4.0, qkv_bias=True, norm_layer=ln) for _ in range(ddepth)])
        self.decoder_norm = ln(Dd)
        self.decoder_pred = torch.nn.Linear(Dd, p * p * 3)

    def forward(self, imgs, ratio):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        B, L, D = x.shape
        keep = int(L * (1 - ratio))
        ids_shuffle = torch.argsort(torch.rand(B, L), dim=1)
        # the inverse permutation (models_mae.py: argsort of the shuffle), written as a scatter
        ids_restore = torch.empty_like(ids_shuffle).scatter_(1, ids_shuffle, torch.arange(L).expand(B, L).contiguous())
        x = torch.gather(x, 1, ids_shuffle[:, :keep, None].repeat(1, 1, D))
        mask = torch.ones(B, L)
        mask[:, :keep] = 0
        mask = torch.zeros(B, L).scatter_(1, ids_shuffle, mask)
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        y = torch.cat([x[:, 1:], self.mask_token.repeat(B, L - keep, 1)], dim=1)
        y = torch.gather(y, 1, ids_restore[..., None].repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1], y], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        h = imgs.shape[2] // self.p
        t = torch.einsum("nchpwq->nhwpqc", imgs.reshape(B, 3, h, self.p, h, self.p)).reshape(B, h * h, -1)
        if self.norm_pix_loss:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
        loss = ((pred - t) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum(), pred, mask


def _official_checkpoint(tmp_path, norm_pix_loss=True):
    torch.manual_seed(0)
    off = _OfficialMAE(norm_pix_loss=norm_pix_loss)
    with torch.no_grad():                                         # random everything: a mis-mapped tensor shows
        for t in off.parameters():
            t.copy_(torch.randn_like(t) * 0.1)
    path = tmp_path / "mae_visualize_vit_test.pth"
    torch.save({"model": off.state_dict()}, path)                 # the released files' layout: {"model": ...}
    return off, path


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_init_loads_official_full_checkpoint_and_predicts_the_same(tmp_path, norm_pix_loss):
    off, path = _official_checkpoint(tmp_path, norm_pix_loss)
    assert {k.split(".")[0] for k in off.state_dict()} == {
        "cls_token", "pos_embed", "patch_embed", "blocks", "norm", "mask_token", "decoder_embed",
        "decoder_pos_embed", "decoder_blocks", "decoder_norm", "decoder_pred"}
    ours = create_mae("mae_vit_test", norm_pix_loss=norm_pix_loss)
    n = load_mae_checkpoint(ours, engine.load_file(str(path), "--init"), str(path))
    assert n == len(ours.state_dict())                            # every tensor of ours came from the file
    imgs = torch.randn(3, 3, 32, 32)
    torch.manual_seed(5)
    loss_o, pred_o, mask_o = off(imgs, 0.75)
    torch.manual_seed(5)
    loss, pred, mask = ours(imgs, 0.75)
    assert torch.equal(mask, mask_o.bool())
    torch.testing.assert_close(pred, pred_o, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, loss_o, atol=1e-5, rtol=1e-5)


