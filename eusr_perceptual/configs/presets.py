"""Every paper's models as named presets of :class:`~eusr_perceptual.configs.gan.GANConfig`.

Each preset has a one-line ``description`` citing paper, section/table and loss formula.
Sweeps and ablations are presets derived from a base with ``replace``/``with_weights``/
``without``, so a table's rows are reachable by name (``--list-presets``) or by flags.

Image values: generators see [0, 255]; the GAN papers' pixel/TV losses are on [0, 1]
(``unit_range``), which is what their weights assume. Perceptual backbones are Keras' VGG19 and
ResNet-50 with their own (Caffe) preprocessing, while the papers' code used torchvision's
normalisation: feature magnitudes differ (see :mod:`eusr_perceptual.losses.vgg`); each run logs
every term at step 0.
"""

from __future__ import annotations

from eusr_perceptual.configs.gan import GANConfig, terms

# -- 4PP-EUSR (Choi et al. 2018), sections 4.3 and 5 -----------------------------------------

#: Where ``nima-train`` exports the predictors with its default run folders.
DEFAULT_AESTHETIC = "runs/nima_ava/export/nima_ava.keras"
DEFAULT_SUBJECTIVE = "runs/nima_tid2013/export/nima_tid2013.keras"


def _fourpp_terms(representation: str = "sum"):
    return terms(
        ("l1", 0.03, {"name": "l_r"}),
        ("adversarial", 0.1, {"name": "l_g"}),
        ("nima_score", 0.01, {"name": "l_as", "predictor": "aesthetic", "alpha": 0.8}),
        ("nima_representation", 0.1, {"name": "l_ar", "predictor": "aesthetic", "reduction": representation}),
        ("nima_score", 0.01, {"name": "l_ss", "predictor": "subjective", "alpha": 0.8}),
        ("nima_representation", 0.1, {"name": "l_sr", "predictor": "subjective", "reduction": representation}),
    )


FOURPP_EUSR = GANConfig(
    description="4PP-EUSR (Choi 2018, sec. 4.3, eq. 8): multi-pass EUSR + D + two NIMA predictors",
    generator={"type": "eusr"},
    discriminator={"type": "4pp_eusr", "head": "per_position", "base_channels": 32, "dense_units": 1024},
    producer="multipass",
    scale=4,
    downscale="matlab",
    objective="sigmoid_ce",
    terms=_fourpp_terms(),
    order="d_first",
    aesthetic=DEFAULT_AESTHETIC,
    subjective=DEFAULT_SUBJECTIVE,
    data="div2k:data/DIV2K:train+valid",
    downscaled_copies=True,
    batch_size=2,
    patch_size=48,
    g_learning_rate=1e-5,
    d_learning_rate=2e-5,
    adam_beta_1=0.9,
    adam_beta_2=0.999,
    adam_epsilon=1e-8,
    steps=200_000,
    checkpoint_every=5_000,
)

FOURPP_PRESETS: dict[str, GANConfig] = {
    "4pp_eusr": FOURPP_EUSR,
    # Eq. 9 / Table 5: the reconstruction weight alpha_r (0.03 in eq. 8).
    "4pp_eusr_alpha_r_0.3": FOURPP_EUSR.with_weights({"l_r": 0.3}).replace(
        description="4PP-EUSR Table 5: alpha_r = 0.3 (eq. 9)"),
    "4pp_eusr_alpha_r_0.003": FOURPP_EUSR.with_weights({"l_r": 0.003}).replace(
        description="4PP-EUSR Table 5: alpha_r = 0.003 (eq. 9)"),
    # Table 4's ablations.
    "4pp_eusr_without_lr": FOURPP_EUSR.without("l_r").replace(description="4PP-EUSR Table 4: without l_r"),
    "4pp_eusr_without_lg": FOURPP_EUSR.without("l_g").replace(description="4PP-EUSR Table 4: without l_g"),
    "4pp_eusr_without_aesthetic": FOURPP_EUSR.without("l_as", "l_ar").replace(
        description="4PP-EUSR Table 4: without the aesthetic terms l_as, l_ar"),
    "4pp_eusr_without_subjective": FOURPP_EUSR.without("l_ss", "l_sr").replace(
        description="4PP-EUSR Table 4: without the subjective terms l_ss, l_sr"),
    # The authors' released code where it departs from the paper.
    "4pp_eusr_authors": FOURPP_EUSR.replace(
        description="4PP-EUSR as the authors' code: subsampling x8 halving, mean representation loss, one forward pass",
        terms=_fourpp_terms("mean"), downscale="subsample", order="simultaneous"),
}

#: The embedded-photograph fine-tuning demo: 16 px LR patches (64 px HR), a narrow
#: discriminator, 10x the paper's learning rates (same ratio), 100 steps. It uses the authors'
#: "mean" representation loss: with eq. 5's sum over 1,280 features l_ar and l_sr are ~1000x
#: larger than in the authors' code, for which eq. 8's weights were tuned.
FOURPP_DEMO = FOURPP_EUSR.replace(
    description="4PP-EUSR demo on the embedded photographs (tiny networks, 100 steps)",
    terms=_fourpp_terms("mean"),
    discriminator={"type": "4pp_eusr", "head": "per_position", "base_channels": 8, "dense_units": 64},
    data="skimage",
    patch_size=16,
    g_learning_rate=1e-4,
    d_learning_rate=2e-4,
    steps=100,
    checkpoint_every=50,
)

# -- SRResNet / SRGAN (Ledig et al. 2017), the 4PP-EUSR Table 1 baselines -------------------
# LR 24 -> HR 96, batch 16, Adam beta_1 0.9, lr 1e-4; SRGAN from SRResNet-MSE, 1e5 updates at
# 1e-4 then 1e5 at 1e-5; l_SR = l_X + 1e-3 l_Gen; VGG features rescaled by 1/12.75; the VGG loss is
# eq. 5's squared Euclidean distance normalised by W H, after the activation. Data: DIV2K, where
# Ledig et al. trained on 350 thousand ImageNet images (section 3.2); --data chooses another set.

_LEDIG = GANConfig(generator={"type": "srresnet"}, discriminator=None, scale=4, batch_size=16, patch_size=24,
                   g_learning_rate=1e-4, d_learning_rate=1e-4, adam_beta_1=0.9, adam_beta_2=0.999, steps=1_000_000,
                   checkpoint_every=10_000, order="d_first", objective="vanilla", data="div2k:data/DIV2K")
# Ledig's MSE is on [-1, 1] (section 3.2): 4x the [0, 1] MSE, the scale the 1e-3 adversarial
# weight and the 1/12.75 VGG rescaling ("VGG losses of a scale comparable to the MSE loss") assume.
_MSE = ("mse", 1.0, {"name": "l_mse", "signed_unit_range": True})


def _vgg(layer: str, name: str, **options):
    return ("vgg", options.pop("weight", 1.0), {"name": name, "layer": layer, **options})


_VGG22 = _vgg("block2_conv2", "l_vgg22", distance="squared_l2", rescale=1 / 12.75)
_VGG54 = _vgg("block5_conv4", "l_vgg54", distance="squared_l2", rescale=1 / 12.75)
_SRGAN = _LEDIG.replace(discriminator={"type": "srgan"}, steps=200_000, lr_milestones=(100_000,), lr_gamma=0.1,
                        psnr_stage="srresnet_mse")
_ADV_SRGAN = ("adversarial", 1e-3, {"name": "l_gen"})

LEDIG_PRESETS: dict[str, GANConfig] = {
    "srresnet_mse": _LEDIG.replace(description="SRResNet-MSE (Ledig 2017; 4PP-EUSR Table 1): l = MSE on [-1,1], 1e6 steps",
                                   terms=terms(_MSE)),
    "srresnet_vgg22": _LEDIG.replace(description="SRResNet-VGG22 (Ledig 2017; 4PP-EUSR Table 1): l = VGG22/12.75 loss",
                                     terms=terms(_VGG22), init_from="", psnr_stage="srresnet_mse"),
    "srgan_mse": _SRGAN.replace(description="SRGAN-MSE (Ledig 2017; 4PP-EUSR Table 1): l = MSE on [-1,1] + 1e-3 l_Gen",
                                terms=terms(_MSE, _ADV_SRGAN)),
    "srgan_vgg22": _SRGAN.replace(description="SRGAN-VGG22 (Ledig 2017; 4PP-EUSR Table 1): l = VGG22/12.75 + 1e-3 l_Gen",
                                  terms=terms(_VGG22, _ADV_SRGAN)),
    "srgan_vgg54": _SRGAN.replace(description="SRGAN-VGG54 (Ledig 2017; 4PP-EUSR Tables 1-2): l = VGG54/12.75 + 1e-3 l_Gen",
                                  terms=terms(_VGG54, _ADV_SRGAN)),
}

# -- BasicSR's MSRResNet / MSRGAN and ESRGAN (Wang et al. 2018), the DP baselines ------------
# HR 128 (LR 32), batch 16, Adam (0.9, 0.99), G step then D step; GAN stage lr 1e-4 halved at
# 50k/100k/200k/300k of 400k; l = 1e-2 L1 + 1.0 VGG54 (before activation, L1) + 5e-3 l_adv.

_BASICSR_GAN = GANConfig(discriminator={"type": "vgg_style"}, scale=4, batch_size=16, patch_size=32,
                         g_learning_rate=1e-4, d_learning_rate=1e-4, adam_beta_1=0.9, adam_beta_2=0.99,
                         lr_milestones=(50_000, 100_000, 200_000, 300_000), lr_gamma=0.5, steps=400_000,
                         checkpoint_every=5_000, order="g_first", data="div2k:data/DIV2K")
_L1 = ("l1", 1e-2, {"name": "l_pix", "unit_range": True})
_VGG54_PRE = _vgg("block5_conv4", "l_percep", before_activation=True, distance="l1")
_GAN_5E3 = ("adversarial", 5e-3, {"name": "l_gan"})
_PSNR = _BASICSR_GAN.replace(discriminator=None, terms=terms(("l1", 1.0, {"name": "l_pix", "unit_range": True})),
                             g_learning_rate=2e-4, lr_milestones=(200_000, 400_000, 600_000, 800_000),
                             steps=1_000_000)

BASICSR_PRESETS: dict[str, GANConfig] = {
    # BasicSR's options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml: CosineAnnealingRestartLR
    # (periods 4 x 250k, restart weights 1, eta_min 1e-7), ema_decay 0.999.
    "msrresnet_psnr": _PSNR.replace(
        description="MSRResNet PSNR model (BasicSR train_MSRResNet_x4.yml; DP's SRGAN-DP generator): l = L1, lr 2e-4 "
                    "cosine-annealed to 1e-7, restarted every 2.5e5 of 1e6, EMA 0.999",
        generator={"type": "msrresnet"}, lr_milestones=(), lr_restart_period=250_000, lr_min=1e-7, ema_decay=0.999),
    "msrgan": _BASICSR_GAN.replace(
        description="MSRGAN (BasicSR train_MSRGAN_x4.yml; DP's SRGAN-DP base): l = 1e-2 L1 + VGG54pre L1 + 5e-3 "
                    "vanilla GAN, 128 px HR, EMA 0.999",
        generator={"type": "msrresnet"}, objective="vanilla", terms=terms(_L1, _VGG54_PRE, _GAN_5E3),
        psnr_stage="msrresnet_psnr", ema_decay=0.999),  # train_MSRGAN_x4.yml's ema_decay
    "esrgan_psnr": _PSNR.replace(
        description="ESRGAN's PSNR-oriented RRDBNet (Wang 2018 sec. 4.1): l = L1, lr 2e-4 halved every 2e5 of 1e6",
        generator={"type": "rrdbnet"}),
    "esrgan": _BASICSR_GAN.replace(
        description="ESRGAN (Wang 2018; DP Table 5): l = 1e-2 L1 + VGG54pre L1 + 5e-3 RaGAN (BasicSR 0.5 form), from esrgan_psnr",
        generator={"type": "rrdbnet"}, objective="ragan", terms=terms(_L1, _VGG54_PRE, _GAN_5E3),
        psnr_stage="esrgan_psnr"),
}

# -- Dual Perceptual Loss (Song et al.), eqs. 2, 8-9, Tables 1-6 ------------------------------
# l = 1e-2 L1 + 5e-3 l_adv + 1 l_DP, l_DP = l_VGG54pre + (1/mu) zeta l_RES(beta). The paper's
# "settings follow ESRGAN" start from a PSNR model (the base's PSNR stage: esrgan_psnr or
# msrresnet_psnr); the authors' code trains from scratch (``esrgan_dp_authors``; any DP preset
# without ``--init-from``). lr 1e-4 (the paper's printed 1e-2 is a typo).


def _dp(base: GANConfig, mu, beta: str = "3,6", weighting: str = "dynamic", **options) -> GANConfig:
    dp = ("dual_perceptual", 1.0, {"name": "l_dp", "mu": mu, "beta": beta, "weighting": weighting,
                                   "layer": "block5_conv4", "before_activation": True, "distance": "l1", **options})
    return base.replace(terms=terms(_L1, _GAN_5E3, dp), ema_decay=0.0)  # the DP code's ymls set no ema_decay


_ESRGAN_DP = _dp(BASICSR_PRESETS["esrgan"], 0.5)
_SRGAN_DP = _dp(BASICSR_PRESETS["msrgan"], 0.5)
DP_PRESETS: dict[str, GANConfig] = {
    "esrgan_dp": _ESRGAN_DP.replace(description="ESRGAN-DP (DP Tables 3-6): RRDBNet, RaGAN, l = 1e-2 L1 + 5e-3 l_adv + l_DP "
                                                "(VGG54pre, beta_3,6, mu 0.5)"),
    "esrgan_dp_authors": _dp(BASICSR_PRESETS["esrgan"], 0.5, beta=None, resnet_mode="authors").replace(
        description="ESRGAN-DP as the authors' code: ResNet stages 1-3 summed, [0,1] input, batch-statistics BN, "
                    "from scratch (no PSNR stage)", psnr_stage=""),
    "srgan_dp": _SRGAN_DP.replace(description="SRGAN-DP (DP Tables 1-4): MSRResNet + VGG-style D 128 + vanilla GAN, "
                                              "l = 1e-2 L1 + 5e-3 l_adv + l_DP (beta_3,6, mu 0.5)"),
}
for _mu in ("0.2", "0.5", "1", "5", "10", "20", "inf"):
    DP_PRESETS[f"srgan_dp_mu{_mu}"] = _dp(BASICSR_PRESETS["msrgan"], _mu, beta="1,3").replace(
        description=f"DP Table 1: SRGAN-DP, beta_1,3, mu = {_mu}" + (" (VGG only)" if _mu == "inf" else ""))
for _beta in ("1,3", "2,4", "3,6", "4,3"):
    DP_PRESETS[f"srgan_dp_beta{_beta.replace(',', '_')}"] = _dp(BASICSR_PRESETS["msrgan"], 0.5, beta=_beta).replace(
        description=f"DP Table 2: SRGAN-DP, mu 0.5, beta_{_beta}")
for _model, _base in (("srgan_dp", BASICSR_PRESETS["msrgan"]), ("esrgan_dp", BASICSR_PRESETS["esrgan"])):
    for _suffix, _mu, _beta in (("muinf", "inf", "1,3"), ("mu1_b13", "1", "1,3"), ("mu10_b13", "10", "1,3"),
                                ("mu0.5_b36", "0.5", "3,6")):
        DP_PRESETS[f"{_model}_t4_{_suffix}"] = _dp(_base, _mu, beta=_beta).replace(
            description=f"DP Table 4 (BSD100): {_model.upper().replace('_', '-')}, mu {_mu}, beta_{_beta}")
DP_PRESETS["esrgan_dp_t6_vgg"] = _dp(BASICSR_PRESETS["esrgan"], "inf").replace(
    description="DP Table 6 row 1: ESRGAN, VGG loss only (= mu infinity)")
DP_PRESETS["esrgan_dp_t6_vgg_resnet"] = _dp(BASICSR_PRESETS["esrgan"], 1, weighting="none").replace(
    description="DP Table 6 row 2: ESRGAN, VGG + ResNet (beta_3,6) unweighted sum")
DP_PRESETS["esrgan_dp_t6_dynamic"] = _ESRGAN_DP.replace(
    description="DP Table 6 row 3: ESRGAN, VGG + ResNet + dynamic weighting (= esrgan_dp)")

# -- Adversarial feature matching (Tej et al.), eq. 1 and section V.B -------------------------
# L = L_content + 0.005 L_adv + 0.01 L_point + 0.5 L_vgg; LR 24 -> HR 96, batch 16, Adam lr 1e-4,
# 2e5 updates, D step then G step. The VGG layer is unstated: VGG54 after activation, MSE. The
# "divide by 10 every 200 epochs" schedule is undefined without an epoch length: constant 1e-4
# (what the authors' code effectively ran).

_AFM = GANConfig(generator={"type": "afm_srresnet"}, discriminator={"type": "afm"}, objective="vanilla", scale=4,
                 batch_size=16, patch_size=24, g_learning_rate=1e-4, d_learning_rate=1e-4, steps=200_000,
                 checkpoint_every=5_000, order="d_first", data="div2k:data/DIV2K")
_POINT = ("huber", 0.01, {"name": "l_point", "unit_range": True, "delta": 1.0})
_AFM_ADV = ("adversarial", 0.005, {"name": "l_adv"})
_AFM_VGG = _vgg("block5_conv4", "l_vgg", weight=0.5, distance="mse")


def _content(combine: str, **options):
    return ("feature_matching", 1.0, {"name": "l_content", "combine": combine, **options})


AFM_PRESETS: dict[str, GANConfig] = {
    "afm_p": _AFM.replace(description="AFM M_p (sec. V.B): L = 0.01 L_point (Huber), no discriminator",
                          discriminator=None, terms=terms(_POINT)),
    "afm_pva": _AFM.replace(description="AFM M_pva: L = 0.01 L_point + 0.5 L_vgg + 0.005 L_adv",
                            terms=terms(_POINT, _AFM_VGG, _AFM_ADV)),
    "afm_pca": _AFM.replace(description="AFM M_pca: L = L_content (D features, simply averaged, no rescaling) + 0.01 L_point "
                                        "+ 0.005 L_adv",
                            terms=terms(_content("mean"), _POINT, _AFM_ADV)),
    "afm_pcsa": _AFM.replace(description="AFM M_pcsa: L = L_content (softmax reweighed) + 0.01 L_point + 0.005 L_adv",
                             terms=terms(_content("softmax"), _POINT, _AFM_ADV)),
    "afm_pcsva": _AFM.replace(description="AFM M_pcsva: L = L_content (softmax) + 0.01 L_point + 0.5 L_vgg + 0.005 L_adv",
                              terms=terms(_content("softmax"), _POINT, _AFM_VGG, _AFM_ADV)),
    # The code's G step reuses the D outputs and maps of the forward pass made before the D
    # update (main_srresnet.py's train loop): the simultaneous order.
    "afm_pcsva_authors": _AFM.replace(
        description="AFM M_pcsva as the authors' code: D layers 1-7 (post-activation) + image, Huber, softmax with "
                    "gradient, no rescaling, noisy labels, G step on the pre-update D outputs",
        objective_options={"label_noise": True}, order="simultaneous",
        terms=terms(_content("softmax", layers="authors", distance="huber", softmax_gradient=True, rescale=False,
                             activation="post"),
                    _POINT, _AFM_VGG, _AFM_ADV)),
}

# -- ESRGAN loss effects (Pan 2023) ------------------------------------------------------------
# An ESRGAN model on 32x32 LR at x2/x3/x4 (HR 64/96/128, a discriminator per size), Adam lr 1e-4
# betas (0, 0.9), batch 16. The paper gives no weights: ESRGAN's (1e-2 pixel, 1 content,
# 5e-3 adversarial) with eq. 6's MSE and eq. 7's squared-L2 VGG content (VGG54 before activation,
# as ESRGAN). WGAN: gradient penalty by default (its optimiser setting is WGAN-GP's); the critic
# has no BatchNormalization. TV (eq. 5, beta 2): weight PAN_TV_WEIGHT (the paper gives none).
# Schedule (section 2.4: "the number of iteration rounds is 100, batchsize = 16"): read as 100
# epochs of DIV2K's 800 training images, one patch per image and epoch, 800 / 16 = 50 steps per
# epoch, PAN_STEPS = 5,000 generator updates (100 updates would not train; nothing in the text
# supports the 100,000 steps this preset had). The WGAN critics take n_critic = 5 updates per
# generator update, Algorithm 1 of both WGAN papers (Arjovsky: with clipping c 0.01; Gulrajani:
# with lambda 10 and Adam (1e-4, 0, 0.9), the optimiser Pan reports), the paper saying nothing
# otherwise; the k updates reuse the step's batch (Algorithm 1 draws a new one for each).

PAN_TV_WEIGHT = 1e-3
PAN_STEPS = 100 * 800 // 16
WGAN_CRITIC_STEPS = 5
_PAN = GANConfig(generator={"type": "rrdbnet"}, discriminator={"type": "vgg_style", "batch_norm": False},
                 objective="wgan_gp", scale=4, batch_size=16, patch_size=32, g_learning_rate=1e-4,
                 d_learning_rate=1e-4, adam_beta_1=0.0, adam_beta_2=0.9, steps=PAN_STEPS, checkpoint_every=500,
                 order="d_first", d_steps=WGAN_CRITIC_STEPS, data="div2k:data/DIV2K")
_PAN_PIXEL = ("mse", 1e-2, {"name": "l_pixel", "unit_range": True})
# Content losses as eqs. 7-8 write them: the squared L2 norm over channels averaged over positions
# ("squared_l2"), C times the per-element MSE. Weight 1/C keeps what the presets intend, ESRGAN's
# content weight 1 on a per-element mean (BasicSR's reduction "mean"): the pixel, content and
# adversarial terms keep ESRGAN's balance, and the VGG (block5_conv4, C = 512) and ResNet
# (conv4_block6_out, C = 1024) variants compare at one per-element weight. The MSE form (the
# presets before issue 21; the same weighted value) is
# ``preset.with_term_options("l_content", distance="mse").with_weights({"l_content": 1.0})``.
_PAN_VGG = _vgg("block5_conv4", "l_content", weight=1 / 512, before_activation=True, distance="squared_l2")
_PAN_RESNET = ("resnet", 1 / 1024, {"name": "l_content", "beta": "3,6", "distance": "squared_l2"})
_PAN_ADV = ("adversarial", 5e-3, {"name": "l_adv"})
_PAN_VARIANTS = {
    "pan_wgan": ("Pan Table 1 'WGAN loss': WGAN-GP critic (n_critic 5), l = 1e-2 MSE + VGG54pre content (eq. 7, squared L2)/512 "
                 "+ 5e-3 l_adv",
                 {}, terms(_PAN_PIXEL, _PAN_VGG, _PAN_ADV)),
    "pan_wgan_clip": ("Pan Table 1 WGAN with weight clipping (0.01, n_critic 5) instead of the gradient penalty",
                      {"objective": "wgan"}, terms(_PAN_PIXEL, _PAN_VGG, _PAN_ADV)),
    "pan_ragan_nolog": ("Pan Table 1 'ESRGAN loss': RaGAN without logarithms, VGG-style D with BN",
                        {"objective": "ragan_nolog", "discriminator": {"type": "vgg_style"}, "d_steps": 1},
                        terms(_PAN_PIXEL, _PAN_VGG, _PAN_ADV)),
    "pan_wgan_tv": (f"Pan Table 2: WGAN + TV (eq. 5, beta 2, weight {PAN_TV_WEIGHT:g})", {},
                    terms(_PAN_PIXEL, _PAN_VGG, _PAN_ADV, ("tv", PAN_TV_WEIGHT, {"name": "l_tv", "beta": 2.0}))),
    "pan_wgan_resnet": ("Pan Table 3: WGAN with the ResNet-50 content loss (eq. 8, squared L2, beta_3,6)/1024", {},
                        terms(_PAN_PIXEL, _PAN_RESNET, _PAN_ADV)),
}
PAN_PRESETS: dict[str, GANConfig] = {}
for _name, (_text, _changes, _terms) in _PAN_VARIANTS.items():
    for _scale in (2, 3, 4):
        PAN_PRESETS[f"{_name}_x{_scale}"] = _PAN.replace(
            description=f"{_text}; x{_scale} ({32 * _scale} px HR)", terms=_terms, scale=_scale, **_changes)

PRESETS: dict[str, GANConfig] = {**FOURPP_PRESETS, "4pp_eusr_demo": FOURPP_DEMO, **LEDIG_PRESETS, **BASICSR_PRESETS,
                                 **DP_PRESETS, **AFM_PRESETS, **PAN_PRESETS}
