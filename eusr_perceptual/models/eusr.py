"""EUSR: enhanced upscaling super-resolution (Kim & Lee 2018), as configured in 4PP-EUSR.

4PP-EUSR section 3.1 and Fig. 3: scale-aware feature extraction (per scale), a shared residual
module, and per-scale enhanced upscaling modules, each doubling the resolution. Section 4.1
fixes 64 channels, 32 local residual blocks in the shared module and 1 in each upscaling
module, which gives 6,295,689 parameters for the x2/x4/x8 model (the paper's Table 1: 6.3M).

Values are RGB in [0, 255] in and out. The output is not clipped (training needs the
gradient everywhere); inference and export clip and round.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from eusr_perceptual.models.common import depth_to_space

#: DIV2K RGB mean subtracted at the input and added back at the output (authors' code).
DIV2K_RGB_MEAN = (114.4, 111.5, 103.0)

BIAS_INITIALIZER = "zeros"
INITIALIZERS = ("residual", "glorot_uniform", "he_normal")


@dataclass(frozen=True)
class EUSRConfig:
    """Architecture of an EUSR model. Defaults are 4PP-EUSR section 4.1."""

    channels: int = 64
    shared_blocks: int = 32
    upscale_blocks: int = 1
    scales: tuple[int, ...] = (2, 4, 8)
    scale_aware_blocks: int = 2
    scale_aware_kernel: int = 5
    rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN
    #: Kernel initialiser of the first conv and the local residual blocks. The paper does not
    #: say; "residual" is the authors' code's ``is_init_res``: fan-in variance scaling with
    #: factor 1e-4 / (shared_blocks + 4 * upscale_blocks * log2(max scale)), so that every
    #: residual branch starts near zero. With "glorot_uniform" the 32-block model starts with
    #: outputs around 1e6. Module-closing and output convs are always Glorot (authors' code).
    initializer: str = "residual"

    def __post_init__(self):
        for scale in self.scales:
            if scale < 2 or scale & (scale - 1):
                raise ValueError(f"EUSR scales must be powers of two >= 2, got {scale}")
        if self.initializer not in INITIALIZERS:
            raise ValueError(f"initializer must be one of {INITIALIZERS}, got {self.initializer!r}")

    def branch_initializer(self):
        """The initialiser of the first conv and of every local residual block's convs."""
        if self.initializer != "residual":
            return self.initializer
        residual_blocks = self.shared_blocks + 4 * self.upscale_blocks * int(math.log2(max(self.scales)))
        return keras.initializers.VarianceScaling(
            scale=1e-4 / residual_blocks, mode="fan_in", distribution="truncated_normal"
        )


def _fresh(initializer: keras.initializers.Initializer) -> keras.initializers.Initializer:
    """A new initialiser with ``initializer``'s config (``from_config(get_config())``, not
    ``deserialize(serialize())``: Keras' serialisation imports TensorFlow whenever it is
    installed, whatever the backend)."""
    return type(initializer).from_config(initializer.get_config())


def _conv(filters: int, kernel: int, name: str, initializer="glorot_uniform", dtype=None) -> layers.Conv2D:
    """A 'same'-padded convolution with bias, stride 1, explicit initialisers.

    The kernel initialiser is a new object for every layer, made from ``initializer``'s config:
    a Keras 3 initialiser object fixes its seed when it is made, so one object shared by layers
    of the same shape would give them identical kernels (before this, all 30 residual-branch
    kernels of a 3-block EUSR started equal).
    """
    return layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=True,
        kernel_initializer=_fresh(keras.initializers.get(initializer)),
        bias_initializer=BIAS_INITIALIZER,
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class LocalResidualBlock(layers.Layer):
    """x + conv(relu(conv(x))) (EUSR's local residual block; no normalisation)."""

    def __init__(self, channels: int, kernel: int = 3, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.kernel = channels, kernel
        self.initializer = keras.initializers.get(initializer)
        self.conv_a = _conv(channels, kernel, "conv_a", self.initializer)
        self.conv_b = _conv(channels, kernel, "conv_b", self.initializer)

    def build(self, input_shape):
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape[:-1] + (self.channels,))

    def call(self, x):
        return x + self.conv_b(ops.relu(self.conv_a(x)))

    def get_config(self):
        return {
            **super().get_config(), "channels": self.channels, "kernel": self.kernel,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class ResidualModule(layers.Layer):
    """``blocks`` local residual blocks, then a 3x3 conv, added to the module's input."""

    def __init__(self, channels: int, blocks: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.blocks = channels, blocks
        self.initializer = keras.initializers.get(initializer)
        self.lrbs = [LocalResidualBlock(channels, 3, self.initializer, name=f"lrb_{i}") for i in range(blocks)]
        self.conv = _conv(channels, 3, "conv")

    def build(self, input_shape):
        for block in self.lrbs:
            block.build(input_shape)
        self.conv.build(input_shape)

    def call(self, x):
        y = x
        for block in self.lrbs:
            y = block(y)
        return x + self.conv(y)

    def get_config(self):
        return {
            **super().get_config(), "channels": self.channels, "blocks": self.blocks,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class EnhancedUpscalingModule(layers.Layer):
    """Doubles the resolution: 4 residual modules in sequence, their 4 outputs concatenated
    (4 x channels) and rearranged with depth-to-space (block 2) back to ``channels``."""

    def __init__(self, channels: int, blocks: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.blocks = channels, blocks
        self.initializer = keras.initializers.get(initializer)
        self.modules_ = [ResidualModule(channels, blocks, self.initializer, name=f"residual_module_{i}") for i in range(4)]

    def build(self, input_shape):
        for module in self.modules_:
            module.build(input_shape)

    def call(self, x):
        outputs = []
        for module in self.modules_:
            x = module(x)
            outputs.append(x)
        return depth_to_space(ops.concatenate(outputs, axis=-1), 2)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.channels)

    def get_config(self):
        return {
            **super().get_config(), "channels": self.channels, "blocks": self.blocks,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="eusr_perceptual")
class EUSR(keras.Model):
    """Multi-scale EUSR generator. ``model(x, scale=s)`` runs the x``s`` path.

    All paths share the first convolution and the shared residual module; each scale owns its
    scale-aware feature extraction (2 local residual blocks of 5x5 convs), its log2(scale)
    enhanced upscaling modules and its output convolution. Outputs are float32 under any
    dtype policy (the output convolutions compute in float32).
    """

    def __init__(self, config: EUSRConfig | None = None, **kwargs):
        config = config or EUSRConfig()
        if isinstance(config, dict):
            config = EUSRConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
        super().__init__(**kwargs)
        self.config = config
        c, init = config.channels, config.branch_initializer()
        self.first_conv = _conv(c, 3, "first_conv", init)
        self.shared_module = ResidualModule(c, config.shared_blocks, init, name="shared_module")
        # String keys: TensorFlow checkpoints only track dicts keyed by strings.
        self.scale_aware = {
            f"x{s}": [
                LocalResidualBlock(c, config.scale_aware_kernel, init, name=f"x{s}_scale_aware_{i}")
                for i in range(config.scale_aware_blocks)
            ]
            for s in config.scales
        }
        self.upscalers = {
            f"x{s}": [EnhancedUpscalingModule(c, config.upscale_blocks, init, name=f"x{s}_upscale_{i}") for i in range(int(math.log2(s)))]
            for s in config.scales
        }
        self.output_convs = {f"x{s}": _conv(3, 3, f"x{s}_output_conv", dtype="float32") for s in config.scales}
        # A NumPy constant, made a tensor of the running backend (and device) at each call: no
        # weight, so the .keras files of every version hold the same variables.
        self._rgb_mean = np.asarray(config.rgb_mean, dtype=np.float32)

    @property
    def input_dtype(self):
        """Inputs are converted to float32, not to the float16 compute dtype of mixed precision:
        the x2-x2 route feeds the first pass's float output into the second pass."""
        return "float32"

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def build(self, input_shape=(None, None, None, 3)):
        """Creates every path's weights (Keras would otherwise build only the paths called)."""
        if self.built:
            return
        probe = ops.zeros((1, 8, 8, 3))
        for scale in self.scales:
            self._forward(probe, scale)
        super().build(input_shape)

    def _forward(self, inputs, scale: int):
        if scale not in self.config.scales:
            raise ValueError(f"this EUSR has paths {self.config.scales}, not x{scale}")
        rgb_mean = ops.convert_to_tensor(self._rgb_mean)
        x = ops.cast(inputs, "float32") - rgb_mean
        x = ops.cast(x, self.compute_dtype)
        x = self.first_conv(x)
        for block in self.scale_aware[f"x{scale}"]:
            x = block(x)
        x = self.shared_module(x)
        for module in self.upscalers[f"x{scale}"]:
            x = module(x)
        return self.output_convs[f"x{scale}"](x) + rgb_mean

    def call(self, inputs, scale: int = 4):
        return self._forward(inputs, int(scale))

    def path_layers(self, scale: int) -> list[layers.Layer]:
        """The layers the x``scale`` path uses, shared ones included."""
        return [
            self.first_conv,
            *self.scale_aware[f"x{scale}"],
            self.shared_module,
            *self.upscalers[f"x{scale}"],
            self.output_convs[f"x{scale}"],
        ]

    def path_variables(self, scale: int) -> list:
        """Trainable variables of the x``scale`` path (what a step on that path updates)."""
        self.build()
        return [v for layer in self.path_layers(scale) for v in layer.trainable_variables]

    def path_parameter_count(self, scale: int) -> int:
        return int(sum(math.prod(v.shape) for v in self.path_variables(scale)))

    def get_config(self):
        return {**super().get_config(), "config": dataclasses.asdict(self.config)}
