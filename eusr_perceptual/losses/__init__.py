"""Loss terms by kind; importing the package registers every built-in term and objective."""

from eusr_perceptual.losses import adversarial, pixel, quality  # noqa: F401  (registration)
from eusr_perceptual.losses import dual_perceptual, feature_matching, resnet, total_variation, vgg  # noqa: F401
