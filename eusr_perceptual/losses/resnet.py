"""The ResNet-50 perceptual loss (DP eq. 5; Pan eq. 8), term kind "resnet".

``l_RES/m,n = (1/(C W H)) sum |beta_mn(SR) - beta_mn(HR)|`` where ``beta_mn`` is the output
(after activation) of the n-th bottleneck of stage m of ``keras.applications.ResNet50``; DP
tries the last bottleneck of each stage (:data:`BETAS`): beta_{1,3}, beta_{2,4}, beta_{3,6},
beta_{4,3} = ``conv2_block3_out``, ``conv3_block4_out``, ``conv4_block6_out``,
``conv5_block3_out``. Options:

* ``beta``: "3,6" style (or a layer name), or a list of them whose losses are summed; default
  "3,6" (DP section 4.3.2), stages 1-3 in the authors' mode.
* ``distance``: "l1" (DP eq. 5, default) or "squared_l2" (Pan eq. 8) or "mse".
* ``mode``: "paper" (default: the frozen network in inference mode, its own Caffe
  preprocessing on [0, 255] RGB) or "authors" (the DP authors' code, ``Resnet_loss``: beta_{1,3}
  + beta_{2,4} + beta_{3,6} summed with weight 1, [0, 1] RGB without normalisation, the
  network left in train mode so that BatchNormalization normalises with batch statistics,
  SR and HR in separate calls). The authors' mode reads the same frozen weights through a
  :func:`~eusr_perceptual.losses.backbones.with_batch_statistics` view: no moving statistic
  is ever updated (PyTorch's train mode would update them; they are unused there).

Keras' ResNet50 is v1 with Caffe-converted weights; torchvision's (the authors') is v1.5:
features are not numerically comparable either way (see
:mod:`~eusr_perceptual.losses.backbones` for the weights file and the step-0 magnitude log).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from eusr_perceptual.losses.backbones import DISTANCES, feature_distance, shared_network
from eusr_perceptual.losses.registry import LossTerm, register_term

#: DP's beta_{m,n} -> the Keras ResNet50 layer (after the residual addition's ReLU).
BETAS = {"1,3": "conv2_block3_out", "2,4": "conv3_block4_out", "3,6": "conv4_block6_out", "4,3": "conv5_block3_out"}
MODES = ("paper", "authors")
DEFAULT_BETAS = {"paper": ("3,6",), "authors": ("1,3", "2,4", "3,6")}


def resnet_layers(beta: str | Sequence[str] | None, mode: str = "paper") -> tuple[str, ...]:
    """Keras layer names for ``beta`` ("3,6", a layer name, or a list of them; None = the
    mode's default)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    betas = DEFAULT_BETAS[mode] if beta is None else (beta,) if isinstance(beta, str) else tuple(beta)
    return tuple(BETAS.get(item.replace(" ", ""), item) for item in betas)


@register_term("resnet", group="perceptual")
class ResNetLoss(LossTerm):
    """Sum over the chosen bottleneck outputs of ``distance(beta(SR), beta(HR))``."""

    def __init__(self, name, weight, resources, beta: str | Sequence[str] | None = None, mode: str = "paper",
                 distance: str = "l1", **options):
        super().__init__(name, weight, resources, **options)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        self.layers, self.mode, self.distance = resnet_layers(beta, mode), mode, distance
        self.preprocess = "unit" if mode == "authors" else "caffe"
        self.network = shared_network(resources, "resnet50", batch_statistics=mode == "authors")
        self.endpoints = self.network.request(self.layers, "output")

    def compute(self, context):
        sr, hr = self.network.features(context, self.preprocess)
        return tf.add_n([feature_distance(sr[key], hr[key], self.distance) for key in self.endpoints])
