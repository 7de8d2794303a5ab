"""What the SRGAN/ESRGAN-family networks share: named initialisers, PyTorch's BatchNorm
settings, and the base class of the one-scale generators.

**Initialisers by name** (:func:`initializer` returns a fresh instance per call). Keras 3
initialisers draw a default seed when constructed and are stateless afterwards, so one
unseeded instance given to two layers of the same shape gives them *identical* weights;
every layer here therefore gets its own instance. The PyTorch equivalents are:

* ``"kaiming_normal_x0.1"``: BasicSR's ``default_init_weights(scale=0.1)`` =
  ``kaiming_normal_`` (fan-in, gain sqrt(2)) times 0.1, i.e. std ``0.1 * sqrt(2 / fan_in)``
  = ``VarianceScaling(scale=0.02, mode="fan_in", distribution="untruncated_normal")``;
  also the AFM paper's "MSRA initialisation x 0.1".
* ``"torch_default"``: PyTorch's default ``Conv2d``/``Linear`` weight init,
  ``kaiming_uniform_(a=sqrt(5))`` = U(+-1/sqrt(fan_in)) = ``VarianceScaling(1/3, "fan_in",
  "uniform")``. PyTorch's default bias init U(+-1/sqrt(fan_in)) has no Keras equivalent;
  biases start at zero everywhere in this package.
* ``"normal_0.02"``: N(0, 0.02) (DCGAN-style, the AFM discriminator's convs).
* ``"glorot_uniform"``: Keras' (and TF1's) default.

**BatchNorm** follows PyTorch's defaults, which the papers' code used: momentum 0.1 in
PyTorch's convention = ``momentum=0.9`` in Keras', ``epsilon=1e-5``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

_INITIALIZERS = {
    "kaiming_normal_x0.1": lambda: keras.initializers.VarianceScaling(
        scale=0.02, mode="fan_in", distribution="untruncated_normal"),
    "torch_default": lambda: keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
    "normal_0.02": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=0.02),
    "glorot_uniform": lambda: keras.initializers.GlorotUniform(),
}
INITIALIZER_NAMES = tuple(_INITIALIZERS)

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def initializer(name: str) -> keras.initializers.Initializer:
    """A new instance of the initialiser called ``name`` (see the module docstring)."""
    if name not in _INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; known: {INITIALIZER_NAMES}")
    return _INITIALIZERS[name]()


def conv(filters: int, kernel: int, name: str, init: str, use_bias: bool = True, strides: int = 1,
         dtype=None) -> layers.Conv2D:
    """A 'same'-padded convolution with a fresh ``init`` kernel and zero bias."""
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=use_bias,
                         kernel_initializer=initializer(init), bias_initializer="zeros", name=name, dtype=dtype)


def batch_norm(name: str, gamma_stddev: float = 0.0) -> layers.BatchNormalization:
    """BatchNorm with PyTorch's momentum and epsilon, beta zero, gamma one, or drawn from
    N(1, ``gamma_stddev``) when it is positive (the AFM discriminator: 0.02)."""
    gamma = keras.initializers.RandomNormal(mean=1.0, stddev=gamma_stddev) if gamma_stddev > 0 else "ones"
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, gamma_initializer=gamma,
                                     beta_initializer="zeros", name=name)


def depth_to_space(x, factor: int):
    """Sub-pixel rearrangement ``[B, H, W, f*f*C] -> [B, f*H, f*W, C]`` in ``keras.ops`` (any
    backend), with ``tf.nn.depth_to_space``'s channel order: output pixel ``(f*h + i, f*w + j)``,
    channel ``c`` is input channel ``(i*f + j)*C + c`` (PyTorch's ``PixelShuffle`` takes
    ``c*f*f + i*f + j``, which only permutes the preceding conv's filters). ``H`` and ``W`` may
    be unknown until run time (a TensorFlow graph traced for any size)."""
    shape = ops.shape(x)
    channels = shape[3] // (factor * factor)
    x = ops.reshape(x, (-1, shape[1], shape[2], factor, factor, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, shape[1] * factor, shape[2] * factor, channels))


def nearest_upsample(x, factor: int):
    """Nearest-neighbour upscaling by an integer ``factor`` (``F.interpolate(mode="nearest")``)."""
    return ops.repeat(ops.repeat(x, factor, axis=1), factor, axis=2)


def upsample_factors(scale: int) -> tuple[int, ...]:
    """The upsampling steps of a one-scale generator: a x2 step per doubling (x2, x4, ...)
    or a single x3 step (DP section 3.1: "only a up-sampling block with a 3x upscaling
    factor is used")."""
    if scale == 3:
        return (3,)
    if scale < 2 or scale & (scale - 1):
        raise ValueError(f"scale must be 3 or a power of two >= 2, got {scale}")
    return (2,) * (scale.bit_length() - 1)


class SingleScaleGenerator(keras.Model):
    """Base of the one-scale generators (SRResNet, MSRResNet, AFM's, RRDBNet), following the
    project's generator protocol like :class:`~eusr_perceptual.models.eusr.EUSR`:
    ``scales`` = ``(scale,)``, ``model(x, scale=s)`` (any other ``s`` is a ValueError), RGB
    float in [0, 255] in, float32 in [0, 255] out (unclipped), float32 output convolution
    under mixed precision, ``build()`` without arguments creating every weight.

    Subclasses set ``supported_scales`` and the affine map between [0, 255] and the range the
    network works in: ``x_net = (x - input_offset) / input_scale`` and
    ``out = y_net * output_scale + output_offset``, and implement ``_body(x_net, training)``.
    """

    supported_scales: tuple[int, ...] = ()
    input_offset = 0.0
    input_scale = 255.0
    output_scale = 255.0
    output_offset = 0.0

    def __init__(self, scale: int = 4, **kwargs):
        super().__init__(**kwargs)
        if scale not in self.supported_scales:
            raise ValueError(f"{type(self).__name__} supports scales {self.supported_scales}, got {scale}")
        self.scale = int(scale)

    @property
    def input_dtype(self):
        """Inputs are converted to float32 (not to float16 under mixed precision): [0, 255]
        values are normalised before the first convolution casts them."""
        return "float32"

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.scale,)

    def build(self, input_shape=(None, None, None, 3)):
        """Creates every weight by running a small probe through the network."""
        if self.built:
            return
        self._forward(ops.zeros((1, 8, 8, 3)), training=False)
        super().build(input_shape)

    def _forward(self, inputs, training):
        x = (ops.cast(inputs, "float32") - ops.convert_to_tensor(self.input_offset, "float32")) / self.input_scale
        y = self._body(ops.cast(x, self.compute_dtype), training)
        return ops.cast(y, "float32") * self.output_scale + ops.convert_to_tensor(self.output_offset, "float32")

    def _body(self, x, training):
        raise NotImplementedError

    def call(self, inputs, scale: int | None = None, training=None):
        if scale is not None and int(scale) != self.scale:
            raise ValueError(f"this {type(self).__name__} has the x{self.scale} path only, not x{scale}")
        return self._forward(inputs, training)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
