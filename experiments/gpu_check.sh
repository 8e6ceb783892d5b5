#!/usr/bin/env bash
# The GPU checks of issues 4 and 6, as run on the lent GPU (README "Measured numbers"). Needs a CUDA machine with
# torch, torchvision and timm (open_clip is not needed: CLIP weights are left random with --pretrained '').
#   bash experiments/gpu_check.sh bench OUT   experiments/bench.py, all four sections (section 4: clip_b16 fine-tuning
#                                             and MAE ViT-B pre-training, img/s, peak memory, MFU; ~5 min)
#   bash experiments/gpu_check.sh e2e OUT     finetune.py clip_b16 and mae.py mae_vit_base_patch16 end to end under
#                                             torchrun (NCCL, bf16, compile, data loading) on shapes at 224 px
set -euo pipefail
what=${1:?bench or e2e}
out=${2:-runs/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__)"
if [ "$what" = bench ]; then
    python3 experiments/bench.py --out "$out/bench.md"
else
    tmp=$(mktemp -d)
    torchrun --standalone --nproc_per_node=1 finetune.py --model clip_b16 --pretrained '' --data shapes \
        --num_train 2048 --num_val 256 --batch_size 128 --epochs 2 --num_workers 12 --log_every 1 --output_dir "$tmp/ft"
    torchrun --standalone --nproc_per_node=1 mae.py --model mae_vit_base_patch16 --data shapes \
        --num_train 2048 --num_val 64 --batch_size 128 --epochs 1 --num_workers 12 --log_every 1 --output_dir "$tmp/mae"
    cp "$tmp/ft/metrics.jsonl" "$out/ft_metrics.jsonl"; cp "$tmp/ft/summary.json" "$out/ft_summary.json"
    cp "$tmp/mae/metrics.jsonl" "$out/mae_metrics.jsonl"; cp "$tmp/mae"/recon_epoch*.png "$out/" 2>/dev/null || true
fi
