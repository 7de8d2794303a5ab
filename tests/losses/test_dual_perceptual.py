"""The Dual Perceptual loss (DP eqs. 8-9): value, gradient, the detached ratio, mu = inf, the
unweighted ablation, c and the zero guard."""

import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.dual_perceptual import DualPerceptualLoss
from eusr_perceptual.losses.registry import Resources
from eusr_perceptual.losses.resnet import ResNetLoss
from eusr_perceptual.losses.vgg import VGGLoss
from eusr_perceptual.training.context import StepContext


@pytest.fixture(scope="module")
def resources():
    resources = Resources()
    resources.backbone_weights = None
    return resources


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(11)
    return (rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32),
            rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32))


def step(sr, hr):
    return StepContext(None, tf.constant(hr), sr if isinstance(sr, tf.Variable) else tf.constant(sr), None)


def separate_losses(resources, sr, hr):
    """l_VGG (VGG54 before activation, L1) and l_RES (beta_{3,6}, L1) as the standalone terms."""
    vgg = VGGLoss("vgg", 1.0, resources, layer="block5_conv4", before_activation=True, distance="l1")
    res = ResNetLoss("res", 1.0, resources, beta="3,6")
    return float(vgg(step(sr, hr))), float(res(step(sr, hr)))


@pytest.mark.parametrize("mu", [0.5, 2.0])
def test_value_is_one_plus_one_over_mu_times_the_vgg_loss(resources, images, mu):
    l_vgg, l_res = separate_losses(resources, *images)
    assert l_vgg > 0 and l_res > 0 and abs(l_vgg / l_res - 1) > 0.1  # zeta is not trivially 1
    term = DualPerceptualLoss("dp", 1.0, resources, mu=mu)
    context = step(*images)
    assert float(term(context)) == pytest.approx((1 + 1 / mu) * l_vgg, rel=1e-5)
    parts = term.parts(context)
    assert float(parts["l_vgg"]) == pytest.approx(l_vgg, rel=1e-6)
    assert float(parts["l_res"]) == pytest.approx(l_res, rel=1e-6)
    assert float(parts["zeta"]) == pytest.approx(l_vgg / l_res, rel=1e-5)
    assert parts is term.parts(context)  # computed once per step


def test_gradient_is_vgg_gradient_plus_zeta_over_mu_resnet_gradient(resources, images):
    mu = 0.5
    sr, hr = images
    variable = tf.Variable(sr)
    term = DualPerceptualLoss("dp", 1.0, resources, mu=mu)
    with tf.GradientTape(persistent=True) as tape:
        parts = term.parts(step(variable, hr))
    grad_dp, grad_vgg, grad_res = (np.array(tape.gradient(parts[key], variable)) for key in ("l_dp", "l_vgg", "l_res"))
    zeta = float(parts["zeta"])
    scale = np.abs(grad_dp).max()
    np.testing.assert_allclose(grad_dp, grad_vgg + zeta / mu * grad_res, atol=1e-5 * scale)
    # Had zeta carried gradient, d[(1 + 1/mu) l_VGG] = (1 + 1/mu) grad l_VGG would come out instead.
    assert np.abs(grad_dp - (1 + 1 / mu) * grad_vgg).max() > 0.1 * scale
    assert tape.gradient(parts["zeta"], variable) is None


def test_mu_infinity_is_vgg_only_without_building_the_resnet(images):
    resources = Resources()
    resources.backbone_weights = None
    term = DualPerceptualLoss("dp", 1.0, resources, mu="inf")
    assert term.resnet is None
    assert [key for key, _ in resources.items()] == ["vgg19:random"]
    l_vgg = float(VGGLoss("vgg", 1.0, resources, before_activation=True, distance="l1")(step(*images)))
    assert float(term(step(*images))) == pytest.approx(l_vgg, rel=1e-6)


def test_unweighted_ablation_and_c(resources, images):
    l_vgg, l_res = separate_losses(resources, *images)
    plain = DualPerceptualLoss("dp_plain", 1.0, resources, weighting="none")
    assert float(plain(step(*images))) == pytest.approx(l_vgg + l_res, rel=1e-5)
    c, mu = 0.7, 0.5
    with_c = DualPerceptualLoss("dp_c", 1.0, resources, mu=mu, c=c)
    assert float(with_c(step(*images))) == pytest.approx(l_vgg + (l_vgg + c) / (l_res + c) * l_res / mu, rel=1e-5)


def test_zero_resnet_loss_is_guarded(resources, images):
    hr = images[1]
    term = DualPerceptualLoss("dp", 1.0, resources)
    parts = term.parts(step(hr.copy(), hr))
    assert float(parts["l_res"]) == 0.0
    assert np.isfinite(float(parts["zeta"])) and float(parts["l_dp"]) == 0.0


def test_options_are_checked(resources):
    with pytest.raises(ValueError, match="weighting"):
        DualPerceptualLoss("dp", 1.0, resources, weighting="static")
    with pytest.raises(ValueError, match="mu"):
        DualPerceptualLoss("dp", 1.0, resources, mu=0)
