"""AFM's discriminator feature-matching content loss (eqs. 6-7): per-layer losses and every
combination by hand, softmax weights that sum to 1 and carry no gradient, the initial
rescaling measured once, stored and checkpointed (also under MirroredStrategy), the authors'
options, and a generator step that leaves the discriminator unchanged."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.losses.adversarial import get_objective
from eusr_perceptual.losses.feature_matching import FeatureMatchingLoss
from eusr_perceptual.losses.registry import Resources
from eusr_perceptual.models.registry import with_features
from eusr_perceptual.training.context import StepContext
from eusr_perceptual.training.gan import GANTrainer
from eusr_perceptual.training.producers import SinglePath
from helpers import assert_short_run_changes_only_g_and_d, make_dataset, tiny_eusr

SIZE = 16


def tiny_discriminator(seed: int = 0) -> keras.Model:
    """conv1 (bias, no BN) then two 4x4 stride-2 convs with BN, LeakyReLU 0.2, Dense(1);
    features: conv1, bn2, bn3 (pre-activation)."""
    images = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1",
                            kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    for index, filters in ((2, 8), (3, 8)):
        x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False, name=f"conv{index}",
                                kernel_initializer=keras.initializers.GlorotUniform(seed + index))(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
    x = keras.layers.Flatten()(keras.layers.LeakyReLU(negative_slope=0.2)(x))
    model = keras.Model(images, keras.layers.Dense(1)(x))
    model.feature_layer_names = ("conv1", "bn2", "bn3")
    return model


def make_discriminate(discriminator):
    features = with_features(discriminator)

    def discriminate(images, with_maps):
        logits, *maps = features(images, training=False)
        return (logits, maps) if with_maps else logits

    return discriminate, features


@pytest.fixture(scope="module")
def setup():
    discriminator = tiny_discriminator()
    rng = np.random.default_rng(5)
    sr1, sr2, hr = (rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32) for _ in range(3))
    return discriminator, sr1, sr2, hr


def context(discriminate, sr, hr):
    return StepContext(None, tf.constant(hr), sr if isinstance(sr, tf.Variable) else tf.convert_to_tensor(sr),
                       discriminate)


def numpy_layer_losses(features, sr, hr, distance=lambda d: d * d):
    fake, real = features(sr, training=False)[1:], features(hr, training=False)[1:]
    return np.array([distance(np.array(f, np.float64) - np.array(r, np.float64)).mean() for f, r in zip(fake, real)])


def softmax(values):
    e = np.exp(values - values.max())
    return e / e.sum()


def term(**options):
    return FeatureMatchingLoss("l_content", 1.0, Resources(), **options)


def test_layer_losses_and_combinations_by_hand(setup):
    discriminator, sr, _, hr = setup
    discriminate, features = make_discriminate(discriminator)
    losses = numpy_layer_losses(features, sr, hr)
    assert losses.shape == (3,) and np.ptp(losses) > 0.1 * losses.max()  # layers differ: weights are not uniform
    step = context(discriminate, sr, hr)
    np.testing.assert_allclose(term(rescale=False).layer_losses(step), losses, rtol=1e-5)
    expected = {"mean": losses.mean(), "sum": losses.sum(), "softmax": (softmax(losses) * losses).sum()}
    for combine, value in expected.items():
        assert float(term(rescale=False, combine=combine)(step)) == pytest.approx(value, rel=1e-5), combine


def test_softmax_weights_sum_to_one_carry_no_gradient_and_scale_each_layer_gradient(setup):
    discriminator, sr, _, hr = setup
    discriminate, _ = make_discriminate(discriminator)
    variable = tf.Variable(sr)
    paper, authors = term(rescale=False), term(rescale=False, softmax_gradient=True)
    with tf.GradientTape(persistent=True) as tape:
        losses = paper.layer_losses(context(discriminate, variable, hr))
        weights = paper.layer_weights(losses)
        value = tf.reduce_sum(weights * losses)
        per_layer = [losses[i] for i in range(3)]
        authors_weights = authors.layer_weights(losses)
        authors_value = tf.reduce_sum(authors_weights * losses)
    assert float(tf.reduce_sum(weights)) == pytest.approx(1.0, abs=1e-6)
    assert tape.gradient(weights, variable) is None
    assert tape.gradient(authors_weights, variable) is not None
    expected = sum(float(weights[i]) * np.array(tape.gradient(per_layer[i], variable)) for i in range(3))
    gradient = np.array(tape.gradient(value, variable))
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.abs(np.array(tape.gradient(authors_value, variable)) - gradient).max() > 1e-3 * np.abs(gradient).max()


def test_rescaling_is_measured_on_the_first_batch_stored_and_checkpointed(setup, tmp_path):
    discriminator, sr1, sr2, hr = setup
    discriminate, features = make_discriminate(discriminator)
    first, second = numpy_layer_losses(features, sr1, hr), numpy_layer_losses(features, sr2, hr)
    softmax_term, mean_term = term(), term(combine="mean", rescale=True)
    assert set(softmax_term.state_variables) == {"scales", "measured_layers"}
    assert term(rescale=False).state_variables == {}
    assert int(softmax_term.state_variables["measured_layers"]) == 0

    # First batch: every rescaled layer loss is 1, so the softmax is uniform and both give 1.
    assert float(softmax_term(context(discriminate, sr1, hr))) == pytest.approx(1.0, rel=1e-5)
    assert float(mean_term(context(discriminate, sr1, hr))) == pytest.approx(1.0, rel=1e-5)
    stored = softmax_term.state_variables["scales"].numpy()
    np.testing.assert_allclose(stored[:3], first, rtol=1e-5)
    assert int(softmax_term.state_variables["measured_layers"]) == 3

    # Later batches use the stored constants.
    ratio = second / first
    value = float(softmax_term(context(discriminate, sr2, hr)))
    assert value == pytest.approx((softmax(ratio) * ratio).sum(), rel=1e-5)
    np.testing.assert_array_equal(softmax_term.state_variables["scales"].numpy(), stored)
    assert float(mean_term(context(discriminate, sr2, hr))) == pytest.approx(ratio.mean(), rel=1e-5)

    # A restored term keeps the measurement instead of measuring its own first batch.
    path = tf.train.Checkpoint(**softmax_term.state_variables).write(str(tmp_path / "fm"))
    restored = term()
    tf.train.Checkpoint(**restored.state_variables).read(path).assert_consumed()
    assert float(restored(context(discriminate, sr2, hr))) == pytest.approx(value, rel=1e-6)


def test_authors_layers_and_huber_distance(setup):
    discriminator, sr, _, hr = setup
    discriminate, features = make_discriminate(discriminator)
    delta = 0.05  # small enough that both Huber branches occur

    def huber(d):
        return np.where(np.abs(d) <= delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))

    image = huber((sr.astype(np.float64) - hr) / 255.0).mean()
    convs = numpy_layer_losses(features, sr, hr, huber)[:2]  # conv1, bn2; the last block is left out
    authors = term(layers="authors", distance="huber", huber_delta=delta, rescale=False, combine="sum")
    step = context(discriminate, sr, hr)
    np.testing.assert_allclose(authors.layer_losses(step), [image, *convs], rtol=1e-5)
    assert float(authors(step)) == pytest.approx(image + convs.sum(), rel=1e-5)


def test_state_is_mirrored_and_every_replica_uses_the_first_replicas_measurement(two_cpu_strategy, setup):
    _, sr1, sr2, hr = setup
    with two_cpu_strategy.scope():
        discriminator = tiny_discriminator()
        mirrored = term(combine="mean", rescale=True)
    scales = mirrored.state_variables["scales"]
    assert isinstance(scales, tf.distribute.DistributedValues)
    assert scales.aggregation == tf.VariableAggregation.ONLY_FIRST_REPLICA
    discriminate, features = make_discriminate(discriminator)
    batches = two_cpu_strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([sr1, sr2][ctx.replica_id_in_sync_group]))

    @tf.function
    def step(sr):
        return two_cpu_strategy.run(lambda images: mirrored.rescaled(
            mirrored.layer_losses(context(discriminate, images, hr))), args=(sr,))

    per_replica = two_cpu_strategy.experimental_local_results(step(batches))
    first, second = numpy_layer_losses(features, sr1, hr), numpy_layer_losses(features, sr2, hr)
    np.testing.assert_allclose(per_replica[0], np.ones(3), rtol=1e-5)
    np.testing.assert_allclose(per_replica[1], second / first, rtol=1e-5)
    for copy in two_cpu_strategy.experimental_local_results(scales):
        np.testing.assert_allclose(copy.numpy()[:3], first, rtol=1e-5)


def test_generator_steps_never_change_the_discriminator():
    keras.utils.set_random_seed(1)
    discriminator = tiny_discriminator()
    trainer = GANTrainer(tiny_eusr(), discriminator, SinglePath(2), get_objective("sigmoid_ce"),
                         [("feature_matching", 1.0, {"name": "l_content"})], backbone_weights=None)
    trainer.compile()
    fm = trainer.terms[0]
    assert trainer.term_state == {"l_content": fm.state_variables}
    lr, hr = next(iter(make_dataset(SIZE // 2, SIZE)(0)))

    # The content loss does depend on D's weights; only G's tape applies it, to G's variables.
    with tf.GradientTape() as tape:
        value = fm(trainer._context(lr, hr, trainer.producer(trainer.generator, lr)))
    d_gradients = tape.gradient(value, discriminator.trainable_variables)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in d_gradients if g is not None) > 0

    d_before = [np.array(v) for v in discriminator.trainable_variables]
    g_before = [np.array(v) for v in trainer.generator.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        sr = trainer.producer(trainer.generator, lr)
    trainer._generator_update(tape, lr, hr, sr)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(d_before, discriminator.trainable_variables))
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(g_before, trainer.generator.trainable_variables))

    history = assert_short_run_changes_only_g_and_d(trainer, make_dataset(SIZE // 2, SIZE)(0))
    assert int(fm.state_variables["measured_layers"]) == 3
    assert np.isfinite(history["l_content"]).all()
