"""The README's TF Serving set-up for the four models parses as TF Serving reads it: the model
config as a ``ModelServerConfig`` text proto naming four distinct models under the mounted
folder, and the ``docker run`` pointing at the files the README writes."""

import re
from pathlib import Path

import pytest

model_server_config_pb2 = pytest.importorskip(
    "tensorflow_serving.config.model_server_config_pb2", reason="tensorflow-serving-api is the [export] extra")
from google.protobuf import text_format  # noqa: E402  (protobuf comes with tensorflow-serving-api)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README[README.index("## Serving the four models side by side"):README.index("## Package layout")]


def _block_after(label: str) -> str:
    return re.search(re.escape(label) + r".*?\n```[a-z]*\n(.*?)```", SECTION, re.S).group(1)


def test_model_config_names_the_four_models_under_the_mounted_folder():
    config = text_format.Parse(_block_after("`serving/models.config`"), model_server_config_pb2.ModelServerConfig())
    models = {c.name: c.base_path for c in config.model_config_list.config}
    assert models == {name: f"/models/{name}" for name in ("eusr", "4pp-eusr", "nima-ava", "nima-tid2013")}
    assert all(c.model_platform == "tensorflow" for c in config.model_config_list.config)
    layout = _block_after("Lay the exports out")
    for name in models:
        assert f"serving/{name}" in layout  # each base folder is filled by the layout commands


def test_docker_run_uses_the_written_files_and_batching():
    batching = dict(line.split(" { value: ") for line in _block_after("`serving/batching.config`").split("\n") if line)
    assert {key: int(value.rstrip(" }")) for key, value in batching.items()} == {
        "max_batch_size": 8, "batch_timeout_micros": 5000, "max_enqueued_batches": 64, "num_batch_threads": 4}
    docker = re.search(r"```bash\n(docker run .*?)```", SECTION, re.S).group(1)
    for flag in ('-v "$PWD/serving:/models" tensorflow/serving', "--model_config_file=/models/models.config",
                 "--enable_batching", "--batching_parameters_file=/models/batching.config"):
        assert flag in docker
