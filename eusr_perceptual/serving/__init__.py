"""Serving pieces of the exports: graph-only code that a SavedModel can hold, and converters.

* :mod:`.graph_resize`: MATLAB bicubic halving and integer upscaling for dynamic sizes;
* :mod:`.codec`: encoded images (PNG, JPEG, BMP, GIF) in, PNG out, as graph ops;
* :mod:`.tiling`: in-graph tiled upscaling (the tile/overlap convention of
  :mod:`eusr_perceptual.inference`), for bounded memory on large images;
* :mod:`.warmup`: TF Serving's ``assets.extra/tf_serving_warmup_requests``;
* :mod:`.rest`: TF Serving's REST ``:predict`` JSON conventions on a loaded SavedModel
  (TensorFlow only: runs without Keras or this project);
* :mod:`.convert`: TFLite and ONNX files, checked in their runtimes.

See docs/serving.md.
"""
