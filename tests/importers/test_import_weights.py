"""Released weights into the project's networks (issue 22): PyTorch state dicts of the ESRGAN /
BasicSR releases and the 4PP-EUSR authors' frozen TF1 graphs, converted by
``eusr-import-weights`` or in memory by ``load_generator``, reproduce their sources' outputs.

The fixtures in tests/fixtures/ are small networks in the real formats with their sources' own
outputs, written by ``make_import_fixtures.py`` (PyTorch) and ``make_eusr_graph_fixture.py``
(TensorFlow 1 graph mode). PyTorch is not needed here: the files are read without it.
"""

import gzip
import json
import os
import pickle
import shlex
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from eusr_perceptual.cli.import_weights import main
from eusr_perceptual.importers import WeightsImportError, import_network
from eusr_perceptual.importers.pytorch import import_state_dict
from eusr_perceptual.importers.tf1_graph import OUTPUT_NODE
from eusr_perceptual.importers.torch_files import read_torch_state_dict
from eusr_perceptual.models.eusr import EUSRConfig
from eusr_perceptual.importers import PROVENANCE_ENTRY
from eusr_perceptual.loading import check_model_path, load_generator
from eusr_perceptual.models.multipass import halve
from eusr_perceptual.resize import imresize_tf
from helpers import FIXTURES

DATA = FIXTURES
OUTPUTS = np.load(DATA / "import_fixture_outputs.npz")
GRAPH_OUTPUTS = np.load(DATA / "tiny_4pp_eusr_outputs.npz")
#: The issue's tolerance on the 0..255 scale.
MAX_DIFF, MEAN_DIFF = 0.05, 0.005

# file, --key, recorded output, key format, entry
GENERATORS = [
    ("rrdbnet_basicsr.pth", None, "rrdbnet_params_ema", "basicsr", "params_ema"),
    ("rrdbnet_basicsr.pth", "params", "rrdbnet_params", "basicsr", "params"),
    ("rrdbnet_esrgan_legacy.pth", None, "rrdbnet_params_ema", "esrgan_legacy", "bare"),
    ("rrdbnet_esrgan.pth", None, "rrdbnet_params_ema", "esrgan", "bare"),
    ("msrresnet_basicsr_x4.pth", None, "msrresnet_x4", "basicsr", "params"),
    ("msrresnet_basicsr_x3.pth", None, "msrresnet_x3", "basicsr", "bare"),
]


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "Traceback" not in error, error
    return error


def assert_close(output, expected):
    difference = np.abs(np.asarray(output, np.float64) - expected)
    assert difference.max() <= MAX_DIFF and difference.mean() <= MEAN_DIFF, (difference.max(), difference.mean())


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    """The frozen graph fixture as the plain .pb the authors release (it is stored gzipped)."""
    path = tmp_path_factory.mktemp("graph") / "tiny_4pp_eusr.pb"
    path.write_bytes(gzip.decompress((DATA / "tiny_4pp_eusr.pb.gz").read_bytes()))
    return path


def test_fixtures_are_in_the_release_formats():
    """Premises: both torch serializations are present; params and params_ema differ, so taking
    the wrong entry would be caught."""
    assert not zipfile.is_zipfile(DATA / "rrdbnet_esrgan_legacy.pth") and not zipfile.is_zipfile(DATA / "msrresnet_basicsr_x3.pth")
    assert zipfile.is_zipfile(DATA / "rrdbnet_basicsr.pth")
    assert set(read_torch_state_dict(DATA / "rrdbnet_basicsr.pth")) == {"params", "params_ema"}
    assert "model.1.sub.0.RDB1.conv1.0.weight" in read_torch_state_dict(DATA / "rrdbnet_esrgan_legacy.pth")
    assert np.abs(OUTPUTS["rrdbnet_params"] - OUTPUTS["rrdbnet_params_ema"]).max() > 10


@pytest.mark.parametrize("name, key, expected, naming, entry", GENERATORS, ids=[f"{g[0]}-{g[4]}" for g in GENERATORS])
def test_converted_generators_reproduce_pytorch(tmp_path, monkeypatch, name, key, expected, naming, entry):
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch would fail: it is not used
    out = tmp_path / "net.keras"
    assert main([str(DATA / name), "--out", str(out), *(["--key", key] if key else [])]) == 0
    model = load_generator(out)
    assert model.provenance["source"] == name and model.provenance["format"] == naming and model.provenance["key"] == entry
    assert len(model.provenance["sha256"]) == 64
    scale = 3 if name.endswith("x3.pth") else 4
    assert model.scales == (scale,)
    assert_close(model(OUTPUTS["lr"].astype(np.float32), scale=scale), OUTPUTS[expected])


def test_msrresnet_needs_basicsr_bilinear_base():
    """Without the bilinear base (the project's default, as DP's code) the same weights miss."""
    model = import_network(DATA / "msrresnet_basicsr_x4.pth").model
    assert model.bilinear_base and model.num_block == 2 and model.num_feat == 4
    lr = OUTPUTS["lr"].astype(np.float32)
    with_base = np.asarray(model(lr))
    model.bilinear_base = False
    assert np.abs(np.asarray(model(lr)) - with_base).mean() > 10


def test_rrdbnet_sizes_come_from_the_file():
    model = import_network(DATA / "rrdbnet_esrgan_legacy.pth").model
    assert (model.num_feat, model.num_block, model.num_grow, model.scale) == (4, 2, 2, 4)


def test_vgg_style_discriminator_reproduces_basicsr(tmp_path):
    out = tmp_path / "d.keras"
    assert main([str(DATA / "vgg_style_basicsr.pth"), "--out", str(out)]) == 0
    discriminator = keras.models.load_model(out, compile=False)
    assert discriminator.input_shape and discriminator.get_layer("input_size_check").size == 64
    logits = np.asarray(discriminator(OUTPUTS["hr"].astype(np.float32), training=False))
    np.testing.assert_allclose(logits, OUTPUTS["vgg_style"], atol=1e-4)
    assert json.loads(zipfile.ZipFile(out).read(PROVENANCE_ENTRY))["arch"] == "vgg_style"
    with pytest.raises(ValueError, match="vgg_style discriminator, not a generator"):
        load_generator(DATA / "vgg_style_basicsr.pth")


def test_graph_paths_and_routes_reproduce_the_authors_graph(tmp_path, graph_file):
    out = tmp_path / "4pp.keras"
    assert main([str(graph_file), "--out", str(out)]) == 0
    model = load_generator(out)
    # Read from the graph, not assumed: the fixture differs from the paper's sizes everywhere but the mean.
    assert model.config == EUSRConfig(channels=4, shared_blocks=2, upscale_blocks=1, scales=(2, 4, 8), scale_aware_blocks=2,
                                      scale_aware_kernel=5, rgb_mean=model.config.rgb_mean)
    np.testing.assert_allclose(model.config.rgb_mean, (114.4, 111.5, 103.0), rtol=1e-6)
    assert model.provenance["format"] == "tf1_frozen_graph" and model.provenance["source"] == "tiny_4pp_eusr.pb"
    lr = GRAPH_OUTPUTS["lr"]
    for scale in (2, 4, 8):
        assert_close(model(lr, scale=scale), GRAPH_OUTPUTS[f"x{scale}"])
    routes = {2: model(model(lr, scale=2), scale=2), 4: model(lr, scale=4), 8: halve(model(lr, scale=8), "subsample")}
    for scale, output in routes.items():
        assert_close(output, GRAPH_OUTPUTS[f"sr_output_{scale}"])
    # The paper's MATLAB halving (the route's default) is not what the graph does.
    assert np.abs(np.asarray(halve(model(lr, scale=8))) - GRAPH_OUTPUTS["sr_output_8"]).max() > 1


def run_graph(path: Path, lr: np.ndarray, scale: float) -> np.ndarray:
    graph_def = tf.compat.v1.GraphDef.FromString(path.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run("sr_output:0", {"sr_input:0": lr, "sr_input_scale:0": scale})


def test_the_graph_fixture_is_a_tf1_frozen_graph_whose_outputs_are_recorded(graph_file):
    """Premises: TF's graph executor gives the recorded sr_output; the graph has TF 1.x's ``Add``
    ops (no ``AddV2``) and constants, no variables."""
    graph_def = tf.compat.v1.GraphDef.FromString(graph_file.read_bytes())
    ops = {node.op for node in graph_def.node}
    assert "Add" in ops and "AddV2" not in ops and not ops & {"VariableV2", "VarHandleOp"}
    for scale in (2, 4, 8):
        np.testing.assert_allclose(run_graph(graph_file, GRAPH_OUTPUTS["lr"], float(scale)),
                                   GRAPH_OUTPUTS[f"sr_output_{scale}"], atol=1e-3)  # oneDNN's rounding


def test_tf1_legacy_bicubic_halving_is_the_subsample_option():
    images = tf.random.uniform((1, 12, 10, 3), 0, 255, seed=1)
    legacy = tf.compat.v1.image.resize_images(images, [6, 5], method=tf.compat.v1.image.ResizeMethod.BICUBIC,
                                              align_corners=False)
    np.testing.assert_array_equal(np.asarray(halve(images, "subsample")), np.asarray(legacy))
    assert np.abs(np.asarray(imresize_tf(images, scale=0.5)) - np.asarray(legacy)).max() > 1


def test_released_files_load_directly(graph_file):
    assert check_model_path(DATA / "rrdbnet_basicsr.pth") == DATA / "rrdbnet_basicsr.pth"
    with pytest.raises(ValueError, match="not a model file"):
        check_model_path(DATA / "rrdbnet_basicsr.pth", "--aesthetic", run_file=None)
    rrdbnet = load_generator(DATA / "rrdbnet_basicsr.pth")
    assert rrdbnet.provenance["key"] == "params_ema"
    assert_close(rrdbnet(OUTPUTS["lr"].astype(np.float32), scale=4), OUTPUTS["rrdbnet_params_ema"])
    eusr = load_generator(graph_file)
    assert_close(eusr(GRAPH_OUTPUTS["lr"], scale=4), GRAPH_OUTPUTS["x4"])


# ---------------------------------------------------------------------------------------------
# Refusals: one line naming the key or node, exit status 2, nothing written.


class SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, capsys):
    marker, out = tmp_path / "ran", tmp_path / "out.keras"
    evil = tmp_path / "RRDB_ESRGAN_x4.pth"
    evil.write_bytes(pickle.dumps(SystemPayload(marker), protocol=2))
    assert main([str(evil), "--out", str(out)]) == 2
    assert "refused to load the global" in one_line_error(capsys)
    assert not marker.exists() and not out.exists()
    pickle.loads(evil.read_bytes())  # control: the payload is live
    assert marker.exists()


@pytest.mark.parametrize("args, message", [
    (["rrdbnet_basicsr.pth", "--arch", "msrresnet"], "holds a rrdbnet (basicsr naming), not a msrresnet"),
    (["rrdbnet_basicsr.pth", "--scale", "2"], "holds a x4 network, not x2"),
    (["rrdbnet_basicsr.pth", "--key", "net_g"], "--key net_g: the file holds params, params_ema"),
    (["rrdbnet_esrgan.pth", "--key", "params"], "is a bare state dict"),
    (["vgg_style_basicsr.pth", "--arch", "eusr"], "EUSR is imported from the authors' frozen .pb graphs"),
])
def test_wrong_options_are_one_line_errors(tmp_path, capsys, args, message):
    out = tmp_path / "out.keras"
    assert main([str(DATA / args[0]), *args[1:], "--out", str(out)]) == 2
    assert message in one_line_error(capsys) and not out.exists()


def state(name="rrdbnet_esrgan.pth"):
    return dict(read_torch_state_dict(DATA / name))


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"body.0.rdb1.conv6.weight": np.zeros((2, 4, 3, 3), np.float32)}), "unknown key 'body.0.rdb1.conv6.weight'"),
    (lambda s: s.pop("trunk_conv.bias"), "missing key 'conv_body.bias'"),
    (lambda s: s.update({"HRconv.weight": np.zeros((4, 4, 1, 1), np.float32)}),
     "key 'conv_hr.weight' has shape (4, 4, 1, 1), the network needs (4, 4, 3, 3)"),
])
def test_state_dicts_that_do_not_fit_are_refused_by_key(change, message):
    arrays = state()
    change(arrays)
    with pytest.raises(WeightsImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_state_dict(arrays, "x.pth")


def test_one_upsampling_conv_needs_a_scale():
    arrays = {k: v for k, v in state("rrdbnet_basicsr.pth")["params"].items() if not k.startswith("conv_up2")}
    with pytest.raises(WeightsImportError, match="x2 .* or x3 .*; pass --scale"):
        import_state_dict(arrays, "x.pth")
    assert import_state_dict(arrays, "x.pth", scale=3).model.scale == 3


def test_a_256_pixel_discriminator_is_refused_naming_its_extra_layer():
    arrays = dict(state("vgg_style_basicsr.pth")["params"])
    arrays["conv5_0.weight"] = np.zeros((16, 16, 3, 3), np.float32)
    with pytest.raises(WeightsImportError, match="unknown key 'conv5_0.weight'"):
        import_state_dict(arrays, "net_d.pth")


def write_graph(graph_file: Path, path: Path, change) -> Path:
    graph_def = tf.compat.v1.GraphDef.FromString(graph_file.read_bytes())
    change(graph_def)
    path.write_bytes(graph_def.SerializeToString())
    return path


def drop(name):
    def change(graph_def):
        kept = [node for node in graph_def.node if node.name != name]
        del graph_def.node[:]
        graph_def.node.extend(kept)
    return change


def add_copy(name, new_name):
    def change(graph_def):
        node = graph_def.node.add()
        node.CopyFrom(next(n for n in graph_def.node if n.name == name))
        node.name = new_name
    return change


@pytest.mark.parametrize("change, message", [
    (drop(OUTPUT_NODE), "has no node 'sr_output'"),
    (drop("generator/shared/conv2d_3/bias"), "missing node 'generator/shared/conv2d_3/bias'"),
    (add_copy("generator/shared/conv2d_4/kernel", "generator/shared/conv2d_9/kernel"),
     "unknown node 'generator/shared/conv2d_9/kernel'"),
    (drop("generator/sub/y"), "no node 'generator/sub/y'"),
])
def test_graphs_that_do_not_fit_are_refused_by_node(tmp_path, capsys, graph_file, change, message):
    source, out = write_graph(graph_file, tmp_path / "model.pb", change), tmp_path / "out.keras"
    assert main([str(source), "--out", str(out)]) == 2
    assert message in one_line_error(capsys) and not out.exists()


def test_a_file_that_is_no_graph_is_refused(tmp_path, capsys):
    source = tmp_path / "model.pb"
    source.write_bytes(b"\xff\xff not a protobuf")
    assert main([str(source), "--out", str(tmp_path / "out.keras")]) == 2
    assert "is not a TensorFlow GraphDef" in one_line_error(capsys)


def test_a_gan_stage_starts_from_a_released_discriminator(tmp_path):
    """Requirement 1c: BasicSR's net_d .pth (and the .keras it converts to) start the preset's
    vgg_style D through --init-d-from; a D of another size is refused naming the array."""
    from eusr_perceptual.configs.gan import GANConfig, terms
    from eusr_perceptual.errors import ValueUsageError
    from eusr_perceptual.pipelines.gan_run import build_discriminator

    released = import_network(DATA / "vgg_style_basicsr.pth").model
    base = GANConfig(generator={"type": "msrresnet", "num_feat": 8, "num_block": 1},
                     discriminator={"type": "vgg_style", "base_channels": 2, "dense_units": 8},
                     terms=terms(("l1", 1.0), ("adversarial", 1e-3)), scale=4, patch_size=16)
    assert released.get_layer("input_size_check").size == base.hr_size == 64  # the fixture is a 64 px D
    fresh = build_discriminator(base)
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), released.get_weights()))
    keras_file = tmp_path / "d.keras"
    assert main([str(DATA / "vgg_style_basicsr.pth"), "--out", str(keras_file)]) == 0
    for source in (DATA / "vgg_style_basicsr.pth", keras_file):
        started = build_discriminator(base.replace(init_d_from=str(source)))
        for a, b in zip(started.get_weights(), released.get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueUsageError, match=r"does not fit the preset's discriminator: array \d+ \(.*fc"):
        build_discriminator(base.replace(patch_size=8, init_d_from=str(keras_file)))
