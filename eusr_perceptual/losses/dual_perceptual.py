"""The Dual Perceptual loss (DP eqs. 8-9, Algorithm 1), term kind "dual_perceptual".

    l_DP = l_VGG + (1/mu) * zeta * l_RES,    zeta = value((l_VGG + c) / (l_RES + c))

``l_VGG`` is the :class:`~eusr_perceptual.losses.vgg.VGGLoss` (DP: VGG54 before activation, L1:
the defaults here) and ``l_RES`` the :class:`~eusr_perceptual.losses.resnet.ResNetLoss` (beta_{3,6},
L1); ``value(.)`` takes the value and cuts the gradient, so ``l_DP = (1 + 1/mu) l_VGG`` at
c = 0 while its gradient is ``grad l_VGG + (zeta/mu) grad l_RES``: zeta rescales the ResNet
step without changing its direction. Options:

* ``mu``: the nonzero constant (DP: 0.5); ``float("inf")`` (or "inf") = VGG only, and the
  ResNet is then not even built (Table 1's mu = infinity, Table 6 row 1).
* ``c``: the paper's "tiny positive constant"; Algorithm 1 and the authors' code use none, so
  the default is 0, with the denominator kept >= :data:`MIN_DENOMINATOR` (l_RES = 0 when SR
  equals HR).
* ``weighting``: "dynamic" (the paper) or "none" (Table 6 row 2, "VGG loss + ResNet loss":
  the plain sum ``l_VGG + l_RES``; mu then only matters as infinity).
* the VGG term's options ``layer``, ``before_activation``, ``distance``, ``rescale``,
  ``preprocess``, and the ResNet term's ``beta``, ``resnet_mode`` ("authors": the DP code's
  stages 1-3 on [0, 1] input with batch-statistics BN), ``resnet_distance``.

The two losses, zeta and the total are computed once per step and kept in the step's context
(:meth:`DualPerceptualLoss.parts`, for logging); the VGG and ResNet forward passes are shared
with any other term on the same networks.
"""

from __future__ import annotations

import math

import tensorflow as tf

from eusr_perceptual.losses.registry import LossTerm, register_term
from eusr_perceptual.losses.resnet import ResNetLoss
from eusr_perceptual.losses.vgg import VGGLoss

WEIGHTINGS = ("dynamic", "none")
#: Lower bound of ``l_RES + c`` in zeta's denominator.
MIN_DENOMINATOR = 1e-12


@register_term("dual_perceptual", group="perceptual")
class DualPerceptualLoss(LossTerm):
    """``l_VGG + (1/mu) zeta l_RES`` (module docstring)."""

    def __init__(self, name, weight, resources, mu: float | str = 0.5, c: float = 0.0, weighting: str = "dynamic",
                 layer: str = "block5_conv4", before_activation: bool = True, distance: str = "l1",
                 rescale: float = 1.0, preprocess: str = "caffe", beta=None, resnet_mode: str = "paper",
                 resnet_distance: str = "l1", **options):
        super().__init__(name, weight, resources, **options)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.mu, self.c, self.weighting = float(mu), float(c), weighting
        if not self.mu > 0:
            raise ValueError(f"mu must be positive (inf = VGG only), got {mu!r}")
        self.vgg = VGGLoss(f"{name}/l_vgg", 1.0, resources, layer=layer, before_activation=before_activation,
                           distance=distance, rescale=rescale, preprocess=preprocess)
        self.resnet = None if math.isinf(self.mu) else ResNetLoss(
            f"{name}/l_res", 1.0, resources, beta=beta, mode=resnet_mode, distance=resnet_distance)

    def parts(self, context) -> dict[str, tf.Tensor]:
        """``{"l_vgg", "l_res", "zeta", "l_dp"}`` of this step, computed once per step and kept
        in the context under ``"<name>/parts"`` (no l_res for mu = inf, no zeta for "none")."""

        def compute():
            l_vgg = self.vgg(context)
            if self.resnet is None:
                return {"l_vgg": l_vgg, "l_dp": l_vgg}
            l_res = self.resnet(context)
            if self.weighting == "none":
                return {"l_vgg": l_vgg, "l_res": l_res, "l_dp": l_vgg + l_res}
            zeta = tf.stop_gradient((l_vgg + self.c) / tf.maximum(l_res + self.c, MIN_DENOMINATOR))
            return {"l_vgg": l_vgg, "l_res": l_res, "zeta": zeta, "l_dp": l_vgg + zeta * l_res / self.mu}

        return context.cached(f"{self.name}/parts", compute)

    def compute(self, context):
        return self.parts(context)["l_dp"]
