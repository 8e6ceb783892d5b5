"""Test helper, launched by torchrun from the tests: runs a script's main() and saves every rank's final
parameters to <output_dir>/rank<r>.pt so a test can check that DDP kept all ranks identical."""
import importlib
import os
import sys

import torch

if __name__ == "__main__":
    script, argv = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, os.getcwd())
    model = importlib.import_module(script).main(argv)
    out = argv[argv.index("--output_dir") + 1]
    torch.save(model.state_dict(), os.path.join(out, f"rank{os.environ.get('RANK', 0)}.pt"))
