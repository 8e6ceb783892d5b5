"""The stored expected values (tests/fixtures/*.pt) are still what the reference code computes: each is made
again by tests/reference/fixtures.py (timm, torch, open_clip) and compared. INSTRUCTOR-ONLY."""
import pytest
import torch

from expect import fixture
from fixtures import MAKERS


def _pairs(stored, fresh, where=""):
    assert stored.keys() == fresh.keys(), f"{where}: keys {sorted(stored)} vs {sorted(fresh)}"
    for k in stored:
        if isinstance(stored[k], dict):
            yield from _pairs(stored[k], fresh[k], f"{where}/{k}")
        else:
            yield f"{where}/{k}", stored[k], fresh[k]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_stored_fixture_is_what_the_reference_code_computes(name):
    for key, stored, fresh in _pairs(fixture(name), MAKERS[name]()):
        if isinstance(stored, torch.Tensor):
            torch.testing.assert_close(stored, fresh, atol=1e-5, rtol=1e-4, msg=lambda m: (
                f"tests/fixtures/{name}.pt{key} is no longer what the reference code computes: rewrite it with "
                f"`python tests/reference/fixtures.py` if that is right\n{m}"))
        else:
            assert stored == fresh, key
