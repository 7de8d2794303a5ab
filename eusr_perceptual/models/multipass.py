"""Multi-pass upscaling (4PP-EUSR section 3.2, Fig. 4).

From one LR image the shared multi-scale EUSR produces three x4 images:

* ``"x4"``: the x4 path;
* ``"x2x2"``: the x2 path applied twice, the second pass taking the first pass's float
  output (neither clipped nor rounded, as in the authors' code);
* ``"x8down"``: the x8 path, then a bicubic downscale by 2.

The model runs four times per input and gradients flow through every pass. The downscale is
``"matlab"`` (MATLAB-compatible bicubic with antialiasing, what the paper says) or
``"subsample"`` (the authors' code: TF1 ``resize_images(BICUBIC, align_corners=False)``,
which for an exact halving samples input pixel ``2 i`` for output pixel ``i``, i.e. takes
every second pixel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

DOWNSCALE_METHODS = ("matlab", "subsample")

#: The three paths of Fig. 4, in the order the fine-tuning stacks them.
PATHS = ("x4", "x2x2", "x8down")


def halve(images: tf.Tensor, method: str = "matlab") -> tf.Tensor:
    """Downscales ``[B, H, W, C]`` images by 2 with ``method`` (see the module docstring)."""
    if method == "matlab":  # TensorFlow's (the fine-tuning's); "subsample" runs on any backend
        from eusr_perceptual.resize import imresize_tf  # lazy: resize imports TensorFlow; models/ does not (issue 23)

        return imresize_tf(images, scale=0.5)
    if method == "subsample":
        return images[:, ::2, ::2, :]
    raise ValueError(f"downscale must be one of {DOWNSCALE_METHODS}, got {method!r}")


def multipass_upscale(model, lr: tf.Tensor, downscale: str = "matlab") -> dict[str, tf.Tensor]:
    """The three x4 upscalings of ``lr`` by a multi-scale EUSR ``model`` (Fig. 4).

    Args:
        model: an EUSR with x2, x4 and x8 paths; ``model(x, scale=s)`` runs the x``s`` path.
        lr: float ``[B, H, W, 3]`` in [0, 255].
        downscale: ``"matlab"`` or ``"subsample"`` for the x8 path's halving.

    Returns:
        ``{"x4", "x2x2", "x8down"}``, each float32 ``[B, 4H, 4W, 3]``, unclipped.
    """
    if downscale not in DOWNSCALE_METHODS:
        raise ValueError(f"downscale must be one of {DOWNSCALE_METHODS}, got {downscale!r}")
    return {
        "x4": model(lr, scale=4),
        "x2x2": model(model(lr, scale=2), scale=2),
        "x8down": halve(model(lr, scale=8), downscale),
    }
