"""Bit-exact seeded runs (issue 21 item 7): ``--bit-exact`` runs make their step functions with
TensorFlow's graph optimizer off, demo studies do by default, and the process setting is
restored. That this keeps two seeded DP demo trainers identical past step 91 (where default
graphs first differ) takes ~8 minutes: ``benchmarks/seeded_runs.py``."""

import tensorflow as tf

from eusr_perceptual.configs.presets import PRESETS
from eusr_perceptual.pipelines import gan_run
from eusr_perceptual.pipelines.study import study_config
from eusr_perceptual.training.determinism import bit_exact_graphs, graph_optimizer_off
from helpers import tiny_preset


def test_bit_exact_graphs_switches_the_graph_optimizer_off_and_restores_the_setting():
    assert not graph_optimizer_off()
    with bit_exact_graphs():
        assert graph_optimizer_off()
    assert not graph_optimizer_off()
    with bit_exact_graphs(enabled=False):
        assert not graph_optimizer_off()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        with bit_exact_graphs():
            assert graph_optimizer_off()
        assert graph_optimizer_off()  # a setting the process had before is kept
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})


def test_a_bit_exact_run_trains_with_the_graph_optimizer_off(tmp_path, monkeypatch):
    seen = []
    fit_run = gan_run.fit_run

    def recording_fit_run(*args, **kwargs):
        seen.append(graph_optimizer_off())
        return fit_run(*args, **kwargs)

    monkeypatch.setattr(gan_run, "fit_run", recording_fit_run)
    config = tiny_preset(PRESETS["srgan_mse"]).replace(steps=1, checkpoint_every=1, init_from="", psnr_stage="")
    for bit_exact in (True, False):
        gan_run.run_gan(config.replace(bit_exact=bit_exact), tmp_path / str(bit_exact), export_dir=None,
                        eval_data=None, verbose=0)
        assert not graph_optimizer_off()
    assert seen == [True, False]


def test_demo_studies_are_bit_exact_and_full_studies_as_asked():
    assert study_config("esrgan_dp", demo=True).bit_exact
    assert not study_config("esrgan_dp", demo=True, bit_exact=False).bit_exact
    assert not study_config("esrgan_dp", demo=False).bit_exact
    assert study_config("esrgan_dp", demo=False, bit_exact=True).bit_exact
    assert study_config("esrgan_dp", demo=True, seed=3, steps=40).replace(bit_exact=False) == \
        study_config("esrgan_dp", demo=True, seed=3, steps=40, bit_exact=False)
