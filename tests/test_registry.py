"""One Registry class behind networks, loss terms and adversarial objectives: the same rule on
duplicate names (refused), the same loading of the built-ins, the same message for an unknown name."""

import subprocess
import sys

import pytest

from eusr_perceptual.losses.adversarial import OBJECTIVES
from eusr_perceptual.losses.registry import TERMS
from eusr_perceptual.models.registry import NETWORKS
from eusr_perceptual.registry import Registry

REGISTRIES = {"loss term": TERMS, "adversarial objective": OBJECTIVES, **{f"{r} type": NETWORKS[r] for r in NETWORKS}}


@pytest.mark.parametrize("what", sorted(REGISTRIES))
def test_every_registry_is_one_class_refusing_a_second_entry_under_a_taken_name(what):
    registry = REGISTRIES[what]
    assert isinstance(registry, Registry) and registry.what == what
    name, entry = next(registry.items())
    registry.register(name)(entry)  # the same entry again is harmless (a re-imported module)
    with pytest.raises(ValueError, match=f"{what} '{name}' is already registered"):
        registry.register(name)(object())
    assert registry.get(name) is entry
    with pytest.raises(ValueError, match=rf"unknown {what} 'no_such'; registered: \["):
        registry.get("no_such")


def test_the_built_ins_are_loaded_by_the_first_read_in_a_fresh_process():
    script = ("from eusr_perceptual.models.registry import NETWORKS\n"
              "from eusr_perceptual.losses.registry import TERMS\n"
              "print(sorted(NETWORKS['generator'].names()), 'l1' in TERMS, 'vgg' in TERMS)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    assert "'eusr'" in out and "'rrdbnet'" in out and out.strip().endswith("True True")
