"""TF Serving's warm-up file: ``<version>/assets.extra/tf_serving_warmup_requests``.

TF Serving replays the requests of that file when it loads a model version (flag
``--enable_model_warmup``, on by default; ``--num_request_iterations_for_warmup`` times each),
before the version serves, so that the lazy work of a first run (graph optimisation, kernel
and oneDNN primitive set-up) is not paid by the first client. The file is a TFRecord of
``tensorflow.serving.PredictionLog`` protos, at most 1000 records; here one ``PredictRequest``
per signature.

The protos come from ``tensorflow-serving-api`` (``pip install .[export]``), whose release
matches the installed TensorFlow's and does not replace it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf

from eusr_perceptual.errors import UsageError

__all__ = [
    "MAX_RECORDS",
    "WARMUP_FILE",
    "MissingExtra",
    "read_warmup_requests",
    "serving_apis",
    "warmup_image",
    "write_warmup_requests",
]

#: Where TF Serving looks for warm-up requests, relative to a SavedModel version folder.
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
#: TF Serving reads no more records than this (``WarmupConsts::kMaxNumRecords``).
MAX_RECORDS = 1000
#: Side of the image that warm-up requests carry.
WARMUP_SIZE = 32


class MissingExtra(UsageError, ImportError):
    """An optional dependency of the ``export`` extra is not installed."""


def warmup_image() -> np.ndarray:
    """A smooth ``WARMUP_SIZE`` square uint8 RGB image (what the warm-up requests carry)."""
    ramp = np.linspace(0, 255, WARMUP_SIZE)
    channels = np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None])
    return np.stack(channels, axis=-1).astype(np.uint8)


def serving_apis():
    """``(predict_pb2, prediction_log_pb2)`` of ``tensorflow-serving-api``.

    Raises:
        MissingExtra: the package is not installed (it is in the ``export`` extra).
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # lazy: optional 'export' extra
    except ImportError as error:
        raise MissingExtra(
            "TF Serving warm-up requests need tensorflow-serving-api: pip install .[export] "
            "(or pip install tensorflow-serving-api)"
        ) from error
    return predict_pb2, prediction_log_pb2


def write_warmup_requests(
    saved_model_dir: str | Path, model_name: str, requests: Iterable[tuple[str, Mapping[str, np.ndarray]]]
) -> Path:
    """Writes one ``PredictionLog`` per ``(signature name, {input name: array})``; returns the file.

    Raises:
        MissingExtra: tensorflow-serving-api is not installed.
        ValueError: more than TF Serving's 1000 records.
    """
    predict_pb2, prediction_log_pb2 = serving_apis()
    requests = list(requests)
    if len(requests) > MAX_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_RECORDS} warm-up records, got {len(requests)}")
    path = Path(saved_model_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in requests:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            for input_name, value in inputs.items():
                request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path: str | Path) -> list[tuple[str, str, dict[str, np.ndarray]]]:
    """``(model name, signature name, {input name: array})`` of every record of a warm-up file
    (string inputs come back as object arrays of bytes)."""
    _, prediction_log_pb2 = serving_apis()
    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append((request.model_spec.name, request.model_spec.signature_name, inputs))
    return requests
