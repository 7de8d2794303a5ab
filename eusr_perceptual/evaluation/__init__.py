"""Benchmark evaluation of upscalers: folder discovery, scoring, tables and plots.

4PP-EUSR section 5: PSNR, SSIM and NIQE on the Y channel with 4 pixels cropped at each
border, per dataset and per method (bicubic, each trained model, each upscaling route of
Table 3); LPIPS (Zhang et al. 2018) beside them when its weights are given.
"""
