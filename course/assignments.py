"""The course manifest: five assignments in reading order, as plain data (no solution code; it ships in
handouts).

Each assignment: title, time (laptop CPU), reading (paper, sections), tasks, lab. Each task: the functions a
handout blanks ("module.Qualified.name", the paper section its stub cites, a hint) and its graded tests
(pytest node ids, points; an id without [params] covers all its parametrizations, and passes only if all do).
Graded tests check behaviour against independent references (timm / open_clip outputs, the papers' formulas
and tables, the reference codes' numbers, statistics), never against the solution's own code, which a handout
lacks. The hint and the function's docstring together state EVERY requirement its graded tests check (shapes,
dtypes, which random generator, orders), and each graded assert says what it expected and cites the paper
(check step f). A graded test may use the functions of its own and EARLIER assignments only: a handout stubs
the later ones (check step a).

A lab: the command a student runs, what they should see (`see`; every number in it a range that `expect` holds
the full run to, so the text cannot drift from the code: `check --labs full`), and a `quick` run (a few steps
of the same command) that every `check` runs in the handout with the student's functions restored, with its
own `expect` (no `quick`: the lab command is quick itself, and check runs it with the lab's `expect`).
An expect entry is (where, key, lo, hi): where "stdout" and key a regex whose group 1 is the number, or a file
relative to the handout: .jsonl with key "name@step" / "name@last", .json with key "name", any file with key
None (it must exist; lo = hi = None). lo == hi: the number exactly, as printed.
Markers: `-m <assignment>` and `-m <assignment>_<task>` select them (course/pytest_plugin.py applies them).
The wrong answers the tests must catch are in course/mutations.py (instructor-only, never in a handout).
"""

PAPERS = {
    "ViT": "Dosovitskiy et al., An Image is Worth 16x16 Words (ICLR 2021), arXiv 2010.11929",
    "MAE": "He et al., Masked Autoencoders Are Scalable Vision Learners (CVPR 2022), arXiv 2111.06377",
    "BEiT": "Bao et al., BEiT: BERT Pre-Training of Image Transformers (ICLR 2022), arXiv 2106.08254",
    "MaskDistill": "Peng et al., A Unified View of Masked Image Modeling (TMLR 2023), arXiv 2210.10615",
    "EVA": "Fang et al., EVA: Exploring the Limits of Masked Visual Representation Learning at Scale (CVPR "
           "2023), arXiv 2211.07636",
    "FT-CLIP": "Dong et al., CLIP Itself is a Strong Fine-tuner (2022), arXiv 2212.06138",
}

# What ASSIGNMENT.md tells students about the test suite's time in a handout (the number of tests is counted
# when the handout is made). Measured on the machine it names (course/README.md, "Measured").
SUITE = dict(time="about 2 minutes on 2 idle cores (the mae handout 1 min 58 s, the finetune handout 1 min 46 s)",
             graded_time="under 15 s (6 to 13 s)", measured="measured 2026-12-06 on 2 AMD EPYC cores")

ASSIGNMENTS = [
    dict(
        name="vit",
        title="The Vision Transformer: patches, positions, attention, blocks",
        time="about 3 h: reading 1 h, coding 1.5-2 h, lab 1 min",
        reading=[("ViT", "§3.1 (Eq. 1-4) and App. A (Eq. 5-8: multi-head self-attention)"),
                 ("MAE", "App. A.1, first paragraph (the ViT it uses; sine-cosine positions)")],
        tasks=[
            dict(name="patches", title="Patch embedding",
                 blanks=[("vit.PatchEmbed.forward", "ViT §3.1 Eq. 1",
                          "self.proj (a stride-P conv) gives (B, D, H/P, W/P); flatten to (B, N, D), patches "
                          "row-major (token 1 is row 0, column 1), as timm's PatchEmbed")],
                 tests=[("tests/test_course_vit.py::test_patch_embed_equals_timm_patch_embed", 2)]),
            dict(name="positions", title="Fixed 2-D sine-cosine position embedding",
                 blanks=[("vit.sincos_pos_embed_2d", "MAE App. A.1",
                          "compute in float64, return float32 of shape (1 + Gh*Gw, D) (cls_token=False: "
                          "(Gh*Gw, D)), tokens row-major; columns j in the first D/2 channels, rows i in the "
                          "last D/2, each half [sin(m w), cos(m w)] (concatenated, not interleaved) with w_k "
                          "= 10000^(-k / (D/4)); the cls row all zeros")],
                 tests=[("tests/test_vit.py::test_sincos_matches_mae_formula_hand_computed", 2),
                        ("tests/test_course_vit.py::test_sincos_rows_and_columns_on_a_non_square_grid", 1)]),
            dict(name="attention", title="Multi-head self-attention",
                 blanks=[("vit.Attention.forward", "ViT App. A Eq. 5-8",
                          "qkv(x): its 3D outputs are [q | k | v], each H heads of Dh -> (B, H, N, Dh); BEiT "
                          "q/v bias: the qkv bias is (q_bias, 0, v_bias); bias = attn_bias (H, N, N), plus "
                          "this block's own relative position bias when it has a table "
                          "(gather_rel_pos_bias); softmax(q k^T / sqrt(Dh) + bias) v, heads concatenated "
                          "back to (B, N, D), self.proj; self.fused: F.scaled_dot_product_attention(q, k, v, "
                          "attn_mask=bias), else written out")],
                 tests=[("tests/test_course_vit.py::"
                         "test_attention_equals_the_formula_fused_and_written_out", 3),
                        ("tests/test_course_vit.py::test_attention_equals_torch_multihead_attention", 2),
                        ("tests/test_vit.py::test_qv_bias_equals_qkv_bias_with_zero_k_bias", 1)]),
            dict(name="block", title="Pre-norm Transformer block (with BEiT's layer scale)",
                 blanks=[("vit.Block.forward", "ViT §3.1 Eq. 2-3",
                          "x + drop_path(gamma_1 * attn(norm1(x), attn_bias)), then x + drop_path(gamma_2 * "
                          "mlp(norm2(x))) with drop_path(y, self.drop_path, self.training); gamma None = no "
                          "layer scale; equal to timm's Block")],
                 tests=[("tests/test_course_vit.py::test_block_equals_timm_block_with_layer_scale", 2)]),
            dict(name="model", title="All together: the same numbers as timm and open_clip",
                 blanks=[],
                 tests=[("tests/test_vit.py::"
                         "test_timm_vit_base_state_dict_loads_strictly_and_gives_same_logits", 3),
                        ("tests/test_vit.py::test_clip_b16_reproduces_open_clip_vit_b16_quickgelu", 2),
                        ("tests/test_vit.py::test_tiny_clip_reproduces_open_clip_tiny_config", 2)]),
        ],
        lab=dict(command="python vit.py --model clip_b16 --img_size 224 && python vit.py --model eva_g14",
                 see="`clip_b16 img 224 params 86.19 M GFLOPs (MACs) 17.56`: FT-CLIP Table 11 gives 17.5 "
                     "GFLOPs (counted through your attention on the meta device); eva_g14 has 1012.56 M "
                     "parameters with its 1000-class head (EVA Table 3a: 1011 M without it); `python vit.py "
                     "--all` lists every preset",
                 expect=[("stdout", r"clip_b16 +img +224 +params +([\d.]+) M", 86.19, 86.19),
                         ("stdout", r"clip_b16 +img +224 +params +[\d.]+ M +GFLOPs \(MACs\) +([\d.]+)",
                          17.56, 17.56),
                         ("stdout", r"eva_g14 +img +224 +params +([\d.]+) M", 1012.56, 1012.56)],
                 time="under 1 min"),
    ),
    dict(
        name="masking",
        title="Masking: MAE's random shuffle and BEiT's blocks",
        time="about 2.5 h: reading 45 min, coding 1.5 h, lab 1 min",
        reading=[("MAE", "§3 'Masking' and 'Simple implementation'; §4.1 Fig. 5, Fig. 6 and Table 1(f)"),
                 ("BEiT", "Algorithm 1 (blockwise masking) and the text around it"),
                 ("MaskDistill", "§3 (40% block-wise) and §4.5 (Figure 2, block vs random)")],
        tasks=[
            dict(name="random", title="MAE random masking by shuffling",
                 blanks=[("masking.random_masking", "MAE §3 'Simple implementation'",
                          "noise = torch.rand(B, N, generator=generator), the generator's first draw (the "
                          "tests draw it again from the same seed); argsort it ascending, keep the first "
                          "int(N * (1 - mask_ratio)) (truncated, not rounded) in that order -> x_visible (B, "
                          "N_keep, D); mask (B, N) bool, True = removed, in patch order; ids_restore (B, N) "
                          "= the inverse permutation (argsort of the argsort)")],
                 tests=[("tests/test_masking.py::test_random_masking_exact_counts_and_kept_tokens", 2),
                        ("tests/test_masking.py::test_ids_restore_inverts_the_shuffle", 2),
                        ("tests/test_masking.py::test_random_masking_same_seed_same_mask", 1),
                        ("tests/test_course_masking.py::"
                         "test_kept_tokens_are_the_smallest_noise_in_noise_order", 2),
                        ("tests/test_course_masking.py::test_random_masks_are_uniform_over_positions", 1)]),
            dict(name="block", title="BEiT block-wise masking",
                 blanks=[("masking.BlockMaskGenerator._place_block", "BEiT Algorithm 1",
                          "up to 10 tries: area s = self._uniform(min_num_patches, max_new, g), aspect r = "
                          "exp(self._uniform(*log_aspect_ratio, g)), h = round(sqrt(s r)), w = round(sqrt(s "
                          "/ r)); if h < Gh and w < Gw a uniform window (top, left: torch.randint(..., "
                          "generator=g)); accept iff 0 < newly masked <= max_new; return that count (0 = "
                          "failed). Every random number from g, never Python's random: the same seed must "
                          "give the same mask"),
                         ("masking.BlockMaskGenerator.__call__", "BEiT Algorithm 1",
                          "returns a (Gh, Gw) bool grid, True = masked (not flattened: .batch() flattens); "
                          "from all False, place blocks (max_new = min(N - count, max_num_patches)) until N "
                          "are masked or one fails; exact=True: mask the shortfall among the unmasked cells, "
                          "picked with torch.randperm(..., generator=generator)")],
                 tests=[("tests/test_masking.py::test_block_masks_never_exceed_n_and_mean_near_beit", 3),
                        ("tests/test_masking.py::test_block_masks_exact_variant_masks_exactly_n", 2),
                        ("tests/test_masking.py::test_single_block_never_spans_full_row_or_column", 2),
                        ("tests/test_masking.py::test_block_mask_eva_counts", 2),
                        ("tests/test_masking.py::"
                         "test_block_mask_same_generator_seed_same_mask_and_row_major_batch", 1),
                        ("tests/test_course_masking.py::test_block_masks_are_made_of_blocks", 2)]),
            dict(name="grid", title="Grid masking",
                 blanks=[("masking.grid_mask", "MAE Table 1(f) / Fig. 6",
                          "returns a (Gh, Gw) bool grid (not flattened), True = masked: keep one patch of "
                          "every 2 x 2 cell, the top-left one (even row and even column)")],
                 tests=[("tests/test_masking.py::test_grid_mask_keeps_one_in_four", 1)]),
        ],
        lab=dict(command="python masking.py --out masks.png",
                 see="masks.png, three rows of four 14 x 14 masks (white = visible): random 75% scattered, "
                     "blocks of 75/196 in rectangles, the regular 1-in-4 grid",
                 expect=[("masks.png", None, None, None), ("stdout", r"block (\d+)/196 exact", 75, 75)],
                 time="under 1 min"),
    ),
    dict(
        name="mae",
        title="Masked autoencoder: encoder on visible patches, light decoder, pixel loss",
        time="about 4 h: reading 1 h, coding 2 h, lab 4 min",
        reading=[("MAE", "§3 (all five paragraphs), §4.1 Table 1(a)-(d), App. A.1 (pre-training)")],
        tasks=[
            dict(name="patchify", title="Images to patches and back",
                 blanks=[("mae.patchify", "MAE §3 'Reconstruction target'",
                          "(B, C, H, W) -> (B, N, P*P*C): patches row-major (the patch embedding's order), "
                          "pixels row-major within a patch, channels last: pixel (i, j), channel c of a "
                          "patch at index (i*P + j)*C + c (reshape + permute)"),
                         ("mae.unpatchify", "MAE §3 'Reconstruction target'",
                          "the exact inverse of patchify: (B, N, P*P*C) -> (B, C, sqrt(N) P, sqrt(N) P)")],
                 tests=[("tests/test_mae.py::test_patchify_unpatchify_identity_and_channel_last_layout", 2),
                        ("tests/test_course_mae.py::test_patchify_of_a_hand_labelled_image", 2)]),
            dict(name="encoder", title="The encoder sees visible patches only",
                 blanks=[("mae.MaskedAutoencoder.forward_encoder", "MAE §3 'MAE encoder'",
                          "encoder.embed_patches (positions added before masking); random_masking(x, "
                          "mask_ratio) with torch's global generator (the tests reseed it); prepend cls; "
                          "encoder.forward_blocks (blocks + final norm) on cls + visible tokens -> (latent "
                          "(B, 1 + N_vis, D), mask, ids_restore)"),
                         ("mae.MaskedAutoencoder.forward_encoder_with_mask_tokens", "MAE Table 1(c)",
                          "the same mask (random_masking of a (B, N, 1) tensor: one draw of the global "
                          "generator, as forward_encoder's), then latent = encoder.forward_features(imgs, "
                          "mask): all N tokens, [M] at the removed ones -> ((B, 1 + N, D), mask, "
                          "ids_restore)")],
                 tests=[("tests/test_mae.py::test_encoder_mask_tokens_variant_sees_all_patches", 1),
                        ("tests/test_course_mae.py::test_encoder_never_sees_the_removed_patches", 2),
                        ("tests/test_course_mae.py::test_encoder_at_ratio_0_is_the_vit_up_to_the_shuffle", 2),
                        ("tests/test_mae.py::"
                         "test_flops_ratio_vit_l_with_vs_without_encoder_mask_tokens_is_3_3", 2)]),
            dict(name="decoder", title="Mask tokens, unshuffle, decoder",
                 blanks=[("mae.MaskedAutoencoder.forward_decoder", "MAE §3 'MAE decoder'",
                          "decoder_embed (B, 1 + N_vis, Dd); after the visible tokens append N - N_vis "
                          "copies of the shared mask token and unshuffle them with ids_restore "
                          "(torch.gather; cls stays first) -> (B, 1 + N, Dd); + decoder_pos_embed; "
                          "decoder_blocks, decoder_norm, decoder_pred; drop cls -> (B, N, P*P*C) in patch "
                          "order; encoder_mask_tokens: the latent already has all N")],
                 tests=[("tests/test_course_mae.py::"
                         "test_decoder_output_is_in_patch_order_whatever_the_shuffle", 2),
                        ("tests/test_course_mae.py::test_decoder_uses_the_mask_token_and_its_positions", 2)]),
            dict(name="loss", title="Normalized-pixel target, loss on removed patches",
                 blanks=[("mae.MaskedAutoencoder.target", "MAE §3 'Reconstruction target'",
                          "patchify(imgs, self.patch_size); with norm_pix_loss (t - mean) / sqrt(var + 1e-6) "
                          "over each patch's P*P*C values (torch's default unbiased var); without: the raw "
                          "patches"),
                         ("mae.MaskedAutoencoder.forward_loss", "MAE §3 'Reconstruction target'",
                          "MSE per patch (mean over its P*P*C values of (pred - target(imgs))^2, in fp32), "
                          "then the mean over the removed patches only: sum(loss * mask) / sum(mask)")],
                 tests=[("tests/test_mae.py::test_norm_pix_target_has_per_patch_mean_0_var_1", 2),
                        ("tests/test_mae.py::test_loss_ignores_visible_patches_and_is_mean_over_removed", 2),
                        ("tests/test_mae.py::test_tiny_mae_overfits_one_batch", 2)]),
        ],
        lab=dict(command="python mae.py --model mae_vit_mini --data atoms",
                 see="runs/mae_mae_vit_mini/recon_epoch009.png, four labelled rows of 8 validation images: "
                     "\"masked input (removed = dataset mean)\", \"prediction + visible; visible patches' "
                     "mean/std\" (the norm-pix prediction of each removed patch, un-normalized with the "
                     "visible patches' average mean/std), \"prediction + visible; TRUE patch mean/std (GT "
                     "leak)\" (with each removed patch's own mean/std: brightness and contrast come from the "
                     "answer) and \"original\"; the contours are recognisable in the GT-leak row. The loss in "
                     "runs/mae_mae_vit_mini/metrics.jsonl (norm-pix target, one batch per logged step) falls "
                     "from 1.85-1.95 at step 10 to 0.44-0.5 at step 780 (the README's quick start: the same "
                     "command, data and numbers)",
                 expect=[("runs/mae_mae_vit_mini/metrics.jsonl", "loss@10", 1.85, 1.95),
                         ("runs/mae_mae_vit_mini/metrics.jsonl", "loss@780", 0.44, 0.5),
                         ("runs/mae_mae_vit_mini/recon_epoch009.png", None, None, None)],
                 # the run's first 10 steps
                 quick=dict(command="python mae.py --model mae_vit_mini --data atoms --max_steps 10",
                            expect=[("runs/mae_mae_vit_mini/metrics.jsonl", "loss@10", 1.85, 1.95),
                                    ("runs/mae_mae_vit_mini/recon_epoch000.png", None, None, None)]),
                 time="3.4 min on 2 AMD EPYC cores (2026-12-06): 10 epochs of 10,000 images of 32 px"),
    ),
    dict(
        name="maskdistill",
        title="MaskDistill and EVA: distilling a frozen teacher's features at masked positions",
        time="about 3.5 h: reading 1 h, coding 1.5-2 h, lab 5 min",
        reading=[("MaskDistill", "§2 (Eq. 1, Table 1), §3 (Eq. 2-3), §4.1, §4.5 Table 8"),
                 ("EVA", "§2.2 (the MIM objective: negative cosine to CLIP's projected features)")],
        tasks=[
            dict(name="teacher", title="T: the frozen teacher's target tokens",
                 blanks=[("maskdistill.Teacher.forward", "MaskDistill §3 / §4.1, EVA §2.2",
                          "resize to self.img_size if needed (F.interpolate bicubic, align_corners=False, "
                          "antialias=True, then clamp 0..1); normalize_image(x, self.mean_std); "
                          "vit.forward_blocks(prepend_cls(embed_patches(x)), final_norm=False); drop cls -> "
                          "(B, N, D_T) ('raw'); 'ln': + vit.norm; 'proj': + vit.norm, vit.proj")],
                 tests=[("tests/test_maskdistill.py::test_target_tokens_equal_open_clip", 3),
                        ("tests/test_maskdistill.py::test_mae_encoder_teacher_from_encoder_pt", 1)]),
            dict(name="normalize", title="N: LayerNorm without affine",
                 blanks=[("maskdistill.normalize_target", "MaskDistill Eq. 3, Table 8",
                          "fp32 (t.float()); 'ln': F.layer_norm over the channels WITHOUT weight and bias "
                          "(biased variance, eps); 'bn': per channel over (B, N), biased variance, eps; "
                          "'none': as is")],
                 tests=[("tests/test_maskdistill.py::"
                         "test_target_norm_is_layer_norm_without_affine_biased_variance", 3)]),
            dict(name="loss", title="L: Smooth-l1 / MSE / cosine on masked tokens",
                 blanks=[("maskdistill.mim_loss", "MaskDistill Eq. 3, Table 8; EVA §2.2",
                          "keep the tokens where mask is True (mask None: all, Table 5), in fp32; smooth_l1 "
                          "with beta (0.5 d^2 / beta below beta, |d| - 0.5 beta above) and mse average over "
                          "tokens x channels; cosine: minus the mean cosine over tokens (-1 = perfect, "
                          "scale-free); none selected: the sum of the empty selection (0, not NaN, backward "
                          "works)")],
                 tests=[("tests/test_maskdistill.py::"
                         "test_loss_ignores_unmasked_positions_and_is_minimal_at_target", 2),
                        ("tests/test_maskdistill.py::"
                         "test_smooth_l1_is_quadratic_below_beta_and_linear_above", 2),
                        ("tests/test_maskdistill.py::test_cosine_loss_is_minus_one_for_identical_vectors", 1),
                        ("tests/test_maskdistill.py::"
                         "test_empty_mask_gives_zero_loss_not_nan_and_backward_works", 1)]),
            dict(name="objective", title="Eq. 1 for one batch",
                 blanks=[("maskdistill.maskdistill_loss", "MaskDistill Eq. 1",
                          "the target N(T(x)), without grad: the teacher's tokens of the [0, 1] images, "
                          "normalized by normalize_target with args.target_norm; the prediction H(S(x_M)): "
                          "model on the images normalized with normalize_image and args.student_mean_std, "
                          "given the mask; then mim_loss with args.loss and args.smooth_l1_beta over the "
                          "masked tokens, or over all tokens (mask None) when args.num_mask_patches is 0 "
                          "(Table 5)")],
                 tests=[("tests/test_course_maskdistill.py::"
                         "test_objective_hands_the_teacher_tokens_to_n_and_the_prediction_to_l", 3),
                        ("tests/test_course_maskdistill.py::"
                         "test_eva_objective_is_negative_cosine_to_projected_clip_tokens", 2),
                        ("tests/test_course_maskdistill.py::"
                         "test_mask_ratio_zero_is_knowledge_distillation_on_all_tokens", 2),
                        ("tests/test_course_maskdistill.py::"
                         "test_cli_loss_falls_and_saves_the_student_encoder", 2)]),
        ],
        lab=dict(command="python mae.py --model mae_vit_mini --data atoms && python maskdistill.py --model "
                         "maskdistill_vit_mini --data atoms",
                 see="the student distilled from the MAE encoder (MaskDistill Table 6 in miniature): the "
                     "loss in runs/maskdistill_maskdistill_vit_mini/metrics.jsonl falls from 0.33-0.42 at "
                     "step 10 to 0.1-0.13 at step 192; the student's encoder is "
                     "runs/maskdistill_maskdistill_vit_mini/encoder.pt (the finetune assignment fine-tunes "
                     "such encoders)",
                 expect=[("runs/maskdistill_maskdistill_vit_mini/metrics.jsonl", "loss@10", 0.33, 0.42),
                         ("runs/maskdistill_maskdistill_vit_mini/metrics.jsonl", "loss@192", 0.1, 0.13),
                         ("runs/maskdistill_maskdistill_vit_mini/encoder.pt", None, None, None)],
                 quick=dict(command="python mae.py --model mae_vit_mini --data atoms --max_steps 10 && "
                                    "python maskdistill.py --model maskdistill_vit_mini --data atoms "
                                    "--max_steps 10",
                            expect=[("runs/maskdistill_maskdistill_vit_mini/metrics.jsonl", "loss@10", None,
                                     None),
                                    ("runs/maskdistill_maskdistill_vit_mini/encoder.pt", None, None, None)]),
                 time="4.6 min on 2 AMD EPYC cores (2026-12-06): the MAE teacher 3.4 min, then 1.2 min"),
    ),
    dict(
        name="finetune",
        title="Fine-tuning: layer-wise lr decay, the FT-CLIP head, the weight EMA",
        time="about 3 h: reading 45 min, coding 1.5 h, lab 8 min",
        reading=[("FT-CLIP", "§2.1 (EMA, LLRD, Tables 3-5, Table 10)"),
                 ("MAE", "App. A.1 'End-to-end fine-tuning' (global pooling, Table 9)")],
        tasks=[
            dict(name="llrd", title="Layer-wise learning-rate decay",
                 blanks=[("finetune.layer_id", "FT-CLIP §2.1 'LLRD'",
                          "cls_token, pos_embed, mask_token, patch_embed.*, norm_pre.* -> 0; blocks.i.* -> i "
                          "+ 1; anything else (rel_pos_bias, norm, fc_norm, head) -> depth + 1"),
                         ("finetune.param_groups_lrd", "FT-CLIP §2.1 'LLRD', Tables 4-5",
                          "engine.param_groups(model, weight_decay, lr_scale_of=f) with f(name) -> "
                          "(layer_id(name, depth), layer_decay ** (depth + 1 - layer_id)), depth the number "
                          "of model.blocks")],
                 tests=[("tests/test_finetune.py::"
                         "test_llrd_vit_b_scales_are_decay_to_the_13_minus_layer_id"
                         "_and_equal_mae_reference", 3),
                        ("tests/test_finetune.py::"
                         "test_llrd_clip_b16_puts_ln_pre_in_layer_0"
                         "_and_matches_ftclip_groups_and_param_count", 3),
                        ("tests/test_finetune.py::"
                         "test_group_lrs_after_real_steps_are_schedule_times_decay_power", 1)]),
            dict(name="head", title="The FT-CLIP head (and MAE's)",
                 blanks=[("vit.ViT.pool_patches", "FT-CLIP §2.1; MAE App. A.1",
                          "(B, 1+N, D) -> (B, D), cls dropped; 'avg': fc_norm(mean of the patch tokens) "
                          "(MAE); 'ln_avg': fc_norm on each patch token, then the mean (FT-CLIP)"),
                         ("finetune.init_head", "FT-CLIP §2.1; MAE App. A.1",
                          "trunc-normal(std) weight; scale 1: zero bias (MAE); else nn.Linear's default bias "
                          "init U(-1/sqrt(D_in), 1/sqrt(D_in)), then weight and bias times scale (FT-CLIP / "
                          "BEiT: 0.001)")],
                 tests=[("tests/test_vit.py::"
                         "test_ftclip_head_drops_ln_post_and_proj_and_pools_ln_then_mean", 2),
                        ("tests/test_course_finetune.py::test_token_and_avg_pooling_equal_timm[avg]", 2),
                        ("tests/test_course_finetune.py::test_head_init_ftclip_and_mae", 2)]),
            dict(name="ema", title="The weight EMA",
                 blanks=[("ema.ModelEma.update", "FT-CLIP §2.1 'EMA', Table 3",
                          "for every parameter of unwrap(model) (no DDP / torch.compile wrapper), matched BY "
                          "NAME (not by position): avg = decay * avg + (1 - decay) * param in fp32, exact at "
                          "decay 0 (a copy) and 1 (unchanged); buffers are copied, not averaged")],
                 tests=[("tests/test_ema.py::test_decay_0_copies_the_model_exactly", 1),
                        ("tests/test_ema.py::test_decay_1_freezes_the_average", 1),
                        ("tests/test_ema.py::"
                         "test_one_step_equals_the_formula_for_every_parameter_and_copies_buffers", 2),
                        ("tests/test_ema.py::test_parameters_are_matched_by_name_not_position", 2),
                        ("tests/test_ema.py::test_ddp_and_compile_wrappers_are_unwrapped", 1)]),
        ],
        lab=dict(command="python mae.py --model mae_vit_mini --data atoms && python finetune.py --model "
                         "vit_mini --data atoms --init runs/mae_mae_vit_mini/encoder.pt && python "
                         "finetune.py --model vit_mini --data atoms --init "
                         "runs/mae_mae_vit_mini/encoder_init.pt",
                 see="val top-1 on atoms' 10 contour classes (chance 10%) after each epoch (the `[finetune] "
                     "epoch` lines) and in each run's summary.json (last_acc1): the MAE encoder fine-tuned "
                     "reaches 62-72% in 3 epochs; the same network from the same init without pre-training "
                     "(encoder_init.pt, MAE's encoder at step 0) reaches only 45-55% (the README's numbers: "
                     "67.2% and 50.1%)",
                 expect=[("runs/finetune_vit_mini_from_mae_mae_vit_mini/summary.json", "last_acc1", 62,
                          72),
                         ("runs/finetune_vit_mini_from_mae_mae_vit_mini_init/summary.json", "last_acc1", 45,
                          55)],
                 quick=dict(command="python mae.py --model mae_vit_mini --data atoms --max_steps 10 && "
                                    "python finetune.py --model vit_mini --data atoms --init "
                                    "runs/mae_mae_vit_mini/encoder.pt --max_steps 10 && python "
                                    "finetune.py --model vit_mini --data atoms --init "
                                    "runs/mae_mae_vit_mini/encoder_init.pt --max_steps 10",
                            expect=[("runs/finetune_vit_mini_from_mae_mae_vit_mini/summary.json", "last_acc1",
                                     None, None),
                                    ("runs/finetune_vit_mini_from_mae_mae_vit_mini_init/summary.json",
                                     "last_acc1", None, None)]),
                 time="7.2 min on 2 AMD EPYC cores (2026-12-06): MAE 3.4 min, then two fine-tunings of "
                      "1.9 min"),
    ),
]
