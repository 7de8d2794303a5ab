"""Generators and discriminators; importing the package registers every built-in network
(:mod:`eusr_perceptual.models.registry`): generators "eusr", "srresnet", "msrresnet",
"afm_srresnet", "rrdbnet"; discriminators "4pp_eusr", "srgan", "vgg_style", "afm"."""

from eusr_perceptual.models import gan_discriminators, rrdbnet, srresnet  # noqa: F401  (registration)
from eusr_perceptual.models.fourpp_discriminator import build_fourpp_discriminator
from eusr_perceptual.models.eusr import EUSR, EUSRConfig
from eusr_perceptual.models.registry import register_network

register_network("4pp_eusr", "discriminator")(build_fourpp_discriminator)


@register_network("eusr", "generator")
def build_eusr(**fields) -> EUSR:
    """EUSR from :class:`EUSRConfig` fields (lists, e.g. from JSON, become tuples)."""
    return EUSR(EUSRConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}))
