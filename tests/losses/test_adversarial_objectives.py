"""Every adversarial objective: values and gradients against hand-computed numbers on
two-logit batches, weight clipping (also on two replicas), the gradient penalty."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.adversarial import (
    AdversarialTerm, Hinge, LeastSquares, RelativisticAverage, RelativisticAverageNoLog, SigmoidCrossEntropy,
    Wasserstein, WassersteinGP, get_objective, registered_objectives)
from eusr_perceptual.models.registry import build_network
from eusr_perceptual.training.context import StepContext

REAL = [[1.0], [2.0]]
FAKE = [[-1.0], [0.0]]


def _value_and_gradients(loss_fn, real=REAL, fake=FAKE):
    """loss, d loss / d real, d loss / d fake (NumPy)."""
    real, fake = tf.constant(real), tf.constant(fake)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real, fake])
        loss = loss_fn(real, fake)
    d_real, d_fake = tape.gradient(loss, [real, fake])
    zero = np.zeros((2,), np.float32)
    return (float(loss), zero if d_real is None else d_real.numpy().ravel(),
            zero if d_fake is None else d_fake.numpy().ravel())


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_registered_names_and_the_vanilla_alias():
    expected = {"sigmoid_ce": SigmoidCrossEntropy, "vanilla": SigmoidCrossEntropy, "ragan": RelativisticAverage,
                "ragan_nolog": RelativisticAverageNoLog, "lsgan": LeastSquares, "hinge": Hinge,
                "wgan": Wasserstein, "wgan_gp": WassersteinGP}
    assert set(expected) <= set(registered_objectives())
    for name, cls in expected.items():
        assert type(get_objective(name)) is cls
    assert get_objective("vanilla").name == "sigmoid_ce"
    assert [get_objective(n).g_needs_real for n in expected] == [False, False, True, True, False, False, False, False]
    assert [get_objective(n).probabilities for n in expected] == [True, True, True, True, False, False, False, False]


def test_vanilla_values_and_gradients():
    objective = get_objective("vanilla")
    # softplus(-1) = 0.3132617, softplus(-2) = 0.1269280, softplus(0) = log 2, softplus(1) = 1.3132617
    d, d_real, d_fake = _value_and_gradients(objective.d_loss)
    assert d == pytest.approx((0.3132617 + 0.1269280) / 2 + (0.3132617 + 0.6931472) / 2, abs=1e-6)
    np.testing.assert_allclose(d_real, -_sigmoid([-1.0, -2.0]) / 2, rtol=1e-5)  # pushes D(real) up
    np.testing.assert_allclose(d_fake, _sigmoid([-1.0, 0.0]) / 2, rtol=1e-5)  # pushes D(fake) down
    g, _, g_fake = _value_and_gradients(objective.g_loss)
    assert g == pytest.approx((1.3132617 + 0.6931472) / 2, abs=1e-6)
    np.testing.assert_allclose(g_fake, -_sigmoid([1.0, 0.0]) / 2, rtol=1e-5)


def test_ragan_basicsr_default_values_and_gradients():
    """mean(real) = 1.5, mean(fake) = -0.5; weights 0.5 (BasicSR)."""
    objective = get_objective("ragan")
    d, d_real, d_fake = _value_and_gradients(objective.d_loss)
    # 0.5 * [mean softplus(-[1.5, 2.5]) + mean softplus([-2.5, -1.5])] = 0.5 * (0.1401515 + 0.1401515)
    assert d == pytest.approx(0.1401515, abs=1e-6)
    # Means detached: d/dr_k = -0.5 * sigmoid(m_f - r_k) / 2, d/df_k = 0.5 * sigmoid(f_k - m_r) / 2.
    np.testing.assert_allclose(d_real, [-0.0456064, -0.0189645], atol=1e-6)
    np.testing.assert_allclose(d_fake, [0.0189645, 0.0456064], atol=1e-6)
    g, g_real, g_fake = _value_and_gradients(objective.g_loss)
    # 0.5 * [mean softplus([1.5, 2.5]) + mean softplus(-[-2.5, -1.5])] = 0.5 * (2.1401515 + 2.1401515)
    assert g == pytest.approx(2.1401515, abs=1e-6)
    # Through the fakes and their mean: 0.5 * (-(sigmoid(1.5) + sigmoid(2.5)) / 4 - sigmoid(m_r - f_k) / 2)
    np.testing.assert_allclose(g_fake, [-0.4487500, -0.4221082], atol=1e-6)
    without_mean = -0.5 * _sigmoid([2.5, 1.5]) / 2
    assert np.all(np.abs(g_fake - without_mean) > 0.2), "the gradient must also flow through mean(fake)"


def test_ragan_summed_paper_form_with_gradients_through_the_means():
    objective = get_objective("ragan", summed=True, detach_d_means=False)
    d, d_real, d_fake = _value_and_gradients(objective.d_loss)
    assert d == pytest.approx(2 * 0.1401515, abs=1e-6)
    # d/dr_k = -sigmoid(m_f - r_k) / 2 - (sigmoid(-2.5) + sigmoid(-1.5)) / 4 (the second term via mean(real))
    np.testing.assert_allclose(d_real, [-0.1557837, -0.1025000], atol=1e-6)
    np.testing.assert_allclose(d_fake, [0.1025000, 0.1557837], atol=1e-6)
    g = _value_and_gradients(get_objective("ragan", summed=True).g_loss)[0]
    assert g == pytest.approx(2 * 2.1401515, abs=1e-6)


def test_ragan_without_log_keeps_the_sigmoid():
    """Pan: L_D = -E_r[D_Ra(r, f)] - E_f[1 - D_Ra(f, r)], L_G = -E_r[1 - D_Ra(r, f)] - E_f[D_Ra(f, r)]."""
    objective = get_objective("ragan_nolog")
    d, d_real, _ = _value_and_gradients(objective.d_loss)
    # sigmoid(1.5) = 0.8175745, sigmoid(2.5) = 0.9241418
    assert d == pytest.approx(-(0.8175745 + 0.9241418) / 2 - (1 - (1 - 0.9241418 + 1 - 0.8175745) / 2), abs=1e-6)
    assert np.all(d_real < 0), "raising a real logit lowers L_D"
    g, _, g_fake = _value_and_gradients(objective.g_loss)
    assert g == pytest.approx(-0.2582837, abs=1e-6)
    # d/df_k = -(s'(1.5) + s'(2.5)) / 4 - s'(f_k - m_r) / 2 with s' = sigmoid * (1 - sigmoid)
    np.testing.assert_allclose(g_fake, [-0.0898644, -0.1293858], atol=1e-6)
    basicsr = get_objective("ragan_nolog", summed=False, detach_d_means=True)
    assert float(basicsr.g_loss(tf.constant(REAL), tf.constant(FAKE))) == pytest.approx(-0.2582837 / 2, abs=1e-6)


def test_least_squares_values_and_gradients():
    objective = get_objective("lsgan")
    d, d_real, d_fake = _value_and_gradients(objective.d_loss)
    assert d == pytest.approx(0.5 * ((0 + 1) / 2 + (1 + 0) / 2))
    np.testing.assert_allclose(d_real, [0.0, 0.5])  # (r - 1) / 2
    np.testing.assert_allclose(d_fake, [-0.5, 0.0])  # f / 2
    g, _, g_fake = _value_and_gradients(objective.g_loss)
    assert g == pytest.approx(0.5 * (4 + 1) / 2)
    np.testing.assert_allclose(g_fake, [-1.0, -0.5])  # (f - 1) / 2


def test_hinge_values_and_gradients():
    real, fake = [[0.5], [2.0]], [[-2.0], [0.0]]
    objective = get_objective("hinge")
    d, d_real, d_fake = _value_and_gradients(objective.d_loss, real, fake)
    assert d == pytest.approx((0.5 + 0) / 2 + (0 + 1) / 2)
    np.testing.assert_allclose(d_real, [-0.5, 0.0])  # only margin violators get a gradient
    np.testing.assert_allclose(d_fake, [0.0, 0.5])
    g, _, g_fake = _value_and_gradients(objective.g_loss, real, fake)
    assert g == pytest.approx(1.0)
    np.testing.assert_allclose(g_fake, [-0.5, -0.5])


@pytest.mark.parametrize("name", ["wgan", "wgan_gp"])
def test_wasserstein_values_and_gradients(name):
    objective = get_objective(name)
    d, d_real, d_fake = _value_and_gradients(objective.d_loss)
    assert d == pytest.approx(-0.5 - 1.5)  # mean(fake) - mean(real)
    np.testing.assert_allclose(d_real, [-0.5, -0.5])
    np.testing.assert_allclose(d_fake, [0.5, 0.5])
    g, _, g_fake = _value_and_gradients(objective.g_loss)
    assert g == pytest.approx(0.5)
    np.testing.assert_allclose(g_fake, [-0.5, -0.5])
    assert float(objective.statistic(tf.constant(REAL))) == pytest.approx(1.5)  # raw critic mean


def _dense_critic(kernel, bias):
    inputs = keras.Input((1, 1, len(kernel)))
    outputs = keras.layers.Dense(1, name="fc")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.get_layer("fc").set_weights([np.array(kernel, np.float32)[:, None], np.array([bias], np.float32)])
    return model


def test_wgan_clips_every_critic_weight_after_an_update():
    critic = _dense_critic([0.5, -0.003, -7.0], -0.2)
    get_objective("wgan").after_discriminator_update(critic)
    kernel, bias = critic.get_layer("fc").get_weights()
    np.testing.assert_allclose(kernel.ravel(), [0.01, -0.003, -0.01])
    np.testing.assert_allclose(bias, [-0.01])
    get_objective("wgan", clip=0.1).after_discriminator_update(critic)  # already inside: unchanged
    np.testing.assert_allclose(critic.get_layer("fc").get_weights()[0].ravel(), [0.01, -0.003, -0.01])
    with pytest.raises(ValueError, match="clip"):
        get_objective("wgan", clip=0.0)


def test_wgan_clipping_on_two_replicas(two_cpu_strategy):
    with two_cpu_strategy.scope():
        critic = _dense_critic([0.5, -0.003], 3.0)
    objective = get_objective("wgan", clip=0.05)
    two_cpu_strategy.run(tf.function(lambda: objective.after_discriminator_update(critic)))
    for variable in critic.trainable_variables:
        for replica_value in two_cpu_strategy.experimental_local_results(variable.value):
            assert np.all(np.abs(replica_value.numpy()) <= 0.05 + 1e-7)
    np.testing.assert_allclose(critic.get_layer("fc").get_weights()[0].ravel(), [0.05, -0.003])


def test_gradient_penalty_of_a_linear_critic_and_its_gradient():
    """C(x) = w . x: grad_x C = w for every interpolate, so GP = 10 (||w|| - 1)^2 = 10 * 16
    for w = (3, 4), and d GP / d w = 20 (||w|| - 1) w / ||w|| = (48, 64)."""
    critic = _dense_critic([3.0, 4.0], 0.5)
    real = tf.constant([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])
    fake = tf.constant([[[[5.0, 0.0]]], [[[2.0, 2.0]]]])
    objective = get_objective("wgan_gp")
    with tf.GradientTape() as tape:
        penalty = objective.penalty(critic, real, fake)
    assert float(penalty) == pytest.approx(160.0, rel=1e-5)
    kernel_gradient, bias_gradient = tape.gradient(penalty, critic.trainable_variables)
    np.testing.assert_allclose(kernel_gradient.numpy().ravel(), [48.0, 64.0], rtol=1e-5)
    assert bias_gradient is None  # the input gradient does not depend on the bias
    assert get_objective("wgan_gp", gp_weight=1.0).penalty(critic, real, fake).numpy() == pytest.approx(16.0, rel=1e-5)


def test_gradient_penalty_norm_is_per_image():
    """C(x) = 0.5 ||x||^2: grad = the interpolate; real = fake fixes it whatever e is. Image
    norms 2 and 0.5 give 10 * ((2 - 1)^2 + (0.5 - 1)^2) / 2 = 6.25."""
    inputs = keras.Input((2, 1, 1))
    critic = keras.Model(inputs, keras.layers.Lambda(lambda x: 0.5 * keras.ops.sum(x * x, axis=[1, 2, 3]))(inputs))
    images = tf.constant([[[[2.0]], [[0.0]]], [[[0.3]], [[0.4]]]])
    assert float(get_objective("wgan_gp").penalty(critic, images, images)) == pytest.approx(6.25, rel=1e-5)


def test_gradient_penalty_refuses_batch_normalisation():
    tiny = {"input_size": 32, "base_channels": 2, "dense_units": 4}
    with_bn = build_network({"type": "vgg_style", **tiny}, "discriminator")
    with pytest.raises(ValueError, match=r"BatchNormalization layers \['bn0_1'"):
        get_objective("wgan_gp").check_discriminator(with_bn)
    get_objective("wgan").check_discriminator(with_bn)  # clipping has no such restriction
    for spec in ({"type": "4pp_eusr"}, {"type": "vgg_style", "batch_norm": False}):
        get_objective("wgan_gp").check_discriminator(build_network({**spec, **tiny}, "discriminator"))


def test_adversarial_term_hands_the_detached_real_logits_to_ragan():
    """Through the step context the real logits are constants and the SR gradient flows
    through the fake logits and their mean (D = mean pixel value / 100)."""
    def discriminate(images, features):
        return tf.reduce_mean(images, axis=[1, 2, 3])[:, None] / 100.0

    term = AdversarialTerm("l_g", 5e-3, resources=None)
    term.objective = get_objective("ragan")
    hr = tf.constant(np.stack([np.full((2, 2, 3), 100.0), np.full((2, 2, 3), 200.0)]), tf.float32)
    sr = tf.Variable(np.stack([np.full((2, 2, 3), -100.0), np.zeros((2, 2, 3))]), dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = term(StepContext(None, hr, sr, discriminate))
    assert float(loss) == pytest.approx(2.1401515, abs=1e-5)  # logits REAL / FAKE
    per_image = tape.gradient(loss, sr).numpy().sum(axis=(1, 2, 3)) * 100.0  # d loss / d logit
    np.testing.assert_allclose(per_image, [-0.4487500, -0.4221082], atol=1e-5)
