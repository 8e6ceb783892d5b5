"""Shared test setup: offline, CPU, deterministic, small."""
import os

# Tests never download anything (DEVELOPERS.md): open_clip/timm must not touch the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
