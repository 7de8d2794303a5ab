"""Every measurement of the project in one place.

* :mod:`~eusr_perceptual.metrics.fidelity`: PSNR and SSIM on MATLAB's Y channel with border crop
  (numpy and TF), equal to BasicSR's;
* :mod:`~eusr_perceptual.metrics.niqe`: NIQE with MATLAB's pristine model;
* :mod:`~eusr_perceptual.metrics.lpips` and :mod:`~eusr_perceptual.importers.lpips`: LPIPS
  and the conversion of its published PyTorch weights;
* :mod:`~eusr_perceptual.metrics.vif`: pixel-domain VIF.
"""

from eusr_perceptual.metrics.fidelity import psnr, rgb_to_y, ssim

__all__ = ["psnr", "rgb_to_y", "ssim"]
