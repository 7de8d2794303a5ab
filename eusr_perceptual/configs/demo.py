"""Any preset, shrunk to run on the embedded photographs in minutes on a 2-core CPU.

The demo keeps a preset's structure (producer, objective, terms and their weights, order,
schedule) and shrinks what only costs time: network widths and depths, patch size, steps;
the perceptual backbones run with random weights (no ImageNet weights offline; the run says
so). Learning rates are raised 10x (same G/D ratio) so that a few hundred steps show an
effect. It demonstrates that a preset trains end to end; it is not a paper result.

The shrinking is applied once, when a demo starts: the entry points apply the command line's
settings after it, as given (``--steps``, ``--checkpoint-every``, ``--g-learning-rate`` ...), and
a resumed demo continues with the settings its ``config.json`` recorded.
"""

from __future__ import annotations

from eusr_perceptual.configs.gan import GANConfig

#: Tiny options per network type (merged over the preset's spec).
TINY_NETWORKS = {
    "eusr": {"channels": 16, "shared_blocks": 4, "upscale_blocks": 1},
    "srresnet": {"num_feat": 16, "num_block": 2},
    "msrresnet": {"num_feat": 16, "num_block": 2},
    "afm_srresnet": {"num_feat": 16, "num_block": 2},
    "rrdbnet": {"num_feat": 16, "num_block": 1, "num_grow": 8},
    "4pp_eusr": {"base_channels": 8, "dense_units": 64},
    "srgan": {"base_channels": 8, "dense_units": 64},
    "vgg_style": {"base_channels": 8, "dense_units": 32},
    "afm": {"base_channels": 8, "dense_units": 64},
}

DEMO_STEPS = 200


def demo_patch_size(scale: int) -> int:
    """16 px LR patches, or 32 where 16 x scale is not a multiple of 32 (the side every
    discriminator of the project accepts)."""
    return 16 if (16 * scale) % 32 == 0 else 32


def demo_version(config: GANConfig, steps: int | None = None) -> GANConfig:
    """``config`` on the embedded photographs with tiny networks (see the module docstring);
    ``steps`` defaults to :data:`DEMO_STEPS`, checkpointed halfway when it is even."""
    steps = steps or DEMO_STEPS

    def tiny(spec):
        return None if spec is None else {**spec, **TINY_NETWORKS.get(spec["type"], {})}

    return config.replace(
        description=f"{config.description} [demo: tiny networks, {steps} steps, embedded photographs]",
        generator=tiny(config.generator),
        discriminator=tiny(config.discriminator),
        data="skimage",
        downscaled_copies=False,
        backbone_weights="none",
        batch_size=min(config.batch_size, 8),
        patch_size=demo_patch_size(config.scale),
        g_learning_rate=10 * config.g_learning_rate,
        d_learning_rate=10 * config.d_learning_rate,
        lr_milestones=(),
        steps=steps,
        checkpoint_every=steps // 2 if steps % 2 == 0 else steps,
        d_warmup=min(config.d_warmup, steps // 10),
        ema_decay=demo_ema_decay(config.ema_decay, steps),
    )


def demo_ema_decay(decay: float, steps: int) -> float:
    """The generator EMA's decay for a ``steps``-step demo: its horizon 1 / (1 - decay) becomes
    a twentieth of the run (0.9 at 200 steps), or stays off (0). Kept as the preset's (e.g.
    ``msrresnet_psnr``'s 0.999, a 1,000-step horizon in 1,000,000 steps), the average would hold
    0.999**200 = 82 % of the random initial weights after a 200-step demo, and the GAN stage
    that starts from it would start from noise."""
    if decay == 0.0 or steps <= 20:
        return 0.0
    return min(decay, 1.0 - 20.0 / steps)
