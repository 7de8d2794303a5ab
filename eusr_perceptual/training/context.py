"""What one generator update knows: the batch, the SR images and, on request, the
discriminator's view of them. Loss terms read it; nothing is computed twice in a step.

``sr`` may hold several upscalings of each LR image stacked along the batch (4PP-EUSR's
three paths); ``hr`` is then tiled to match, so every term's batch mean averages over all of
them, as section 4.3 says ("calculated for all the three upscaled images and then averaged").
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf


class StepContext:
    """The generator-step context: ``lr``, ``hr`` (matched to ``sr``), ``sr``, and lazily
    ``fake_logits``, ``real_logits`` and the discriminator's ``fake_features`` /
    ``real_features`` (lists of pre-activation maps, one per conv block).

    Args:
        lr, hr, sr: the LR batch, its HR batch (float32), the SR images (float32), which hold
            ``repeats`` upscalings of each LR image stacked along the batch.
        discriminate: ``discriminate(images, features: bool)`` -> logits, or
            ``(logits, features)`` when ``features`` is True; uses the discriminator as it is
            at the moment of the call.
        real_logits: logits of HR already computed this step (e.g. by the simultaneous step),
            or None to compute on request.
        fake_logits: the same for SR.
        features: ``(fake maps, real maps)`` already computed this step, the real ones
            constants, or None to compute on request.
        discriminate_pair: ``discriminate_pair(hr, sr, features: bool)`` -> (HR's, SR's) result
            of ``discriminate``, in separate calls or one, as the trainer's schedule says; used
            whenever both batches are needed.
        step: the global step (int64 tensor).

        repeats: how many upscalings of each image ``sr`` holds (3 for 4PP-EUSR).

    ``hr_batch`` is the HR batch as given; ``hr`` is it tiled ``repeats`` times to match ``sr``.
    """

    def __init__(self, lr, hr, sr, discriminate: Callable[..., Any] | None, *, real_logits=None, fake_logits=None,
                 features=None, discriminate_pair: Callable[..., Any] | None = None, step=None, repeats: int = 1):
        self.lr, self.hr_batch, self.sr, self.step, self.repeats = lr, hr, sr, step, repeats
        self.hr = hr if repeats == 1 else tf.tile(hr, [repeats, 1, 1, 1])
        self._discriminate, self._discriminate_pair = discriminate, discriminate_pair
        self._cache: dict[str, Any] = {}
        for key, value in (("real_logits", real_logits), ("fake_logits", fake_logits), ("features", features)):
            if value is not None:
                self._cache[key] = value

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per step under ``key`` (shared by every term that asks)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _need_discriminator(self, pair: bool = False):
        if self._discriminate is None:
            raise ValueError("this loss term needs the discriminator, and the trainer has none")
        if pair and self._discriminate_pair is None:
            return lambda hr, sr, features: (self._discriminate(hr, features), self._discriminate(sr, features))
        return self._discriminate_pair if pair else self._discriminate

    @property
    def fake_logits(self) -> tf.Tensor:
        return self.cached("fake_logits", lambda: self._need_discriminator()(self.sr, False))

    @property
    def real_logits(self) -> tf.Tensor:
        """HR logits; constants for the generator (gradient stopped, as BasicSR detaches them)."""
        return self.cached("real_logits", lambda: tf.stop_gradient(self._need_discriminator()(self.hr, False)))

    def _features(self):
        def compute():
            (real_logits, real_maps), (fake_logits, fake_maps) = self._need_discriminator(pair=True)(
                self.hr, self.sr, True)
            self._cache.setdefault("fake_logits", fake_logits)
            self._cache.setdefault("real_logits", tf.stop_gradient(real_logits))
            return fake_maps, [tf.stop_gradient(m) for m in real_maps]
        return self.cached("features", compute)

    @property
    def fake_features(self) -> list[tf.Tensor]:
        """The discriminator's pre-activation conv features of SR (gradient flows to G)."""
        return self._features()[0]

    @property
    def real_features(self) -> list[tf.Tensor]:
        """The same for HR (constants)."""
        return self._features()[1]
