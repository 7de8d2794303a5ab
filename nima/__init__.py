"""NIMA quality-score predictors for 4PP-EUSR (Choi et al., 2018, sections 3.4 and 4.2).

Modules: ``config`` (NimaConfig, the AVA_PAPER / TID2013_PAPER presets), ``model``
(build_nima, load_predictor), ``losses`` (squared EMD of eq. 1, NIMA's EMD), ``datasets``
(AVA, TID2013), ``preprocessing`` (crops, flips, padding), ``train`` (the two phases),
``evaluation`` (EMD, SROCC, LCC, accuracy) and ``export``. See docs/nima.md.
"""
