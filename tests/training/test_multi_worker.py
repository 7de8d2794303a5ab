"""Training past one machine (issue 12): strategies by name, TF_CONFIG checks, the global batch
split per replica, and a real two-worker MultiWorkerMirroredStrategy run on localhost that
matches the single-process run and resumes exactly after its workers are restarted.

Run as a script (``python tests/training/test_multi_worker.py '<json>'``) this file is one worker.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CONFIG = {"channels": 4, "shared_blocks": 1, "upscale_blocks": 1, "scales": (2, 4), "scale_aware_blocks": 1}
PATCH, BATCH = 8, 4
REPO = Path(__file__).resolve().parents[2]
WORKER_TIMEOUT = 240  # seconds for each two-worker launch (import, build, trace, train, save)


def pretrain(run_dir, store, steps, initial_weights, strategy):
    """A tiny EUSR pre-training (the real trainer and run loop) from a store; its final weights."""
    import keras

    from eusr_perceptual.data.samplers import make_sampler
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig
    from eusr_perceptual.training.pretrain import MultiScalePretrainer
    from eusr_perceptual.training.runs import RunOptions, fit_run

    sampler = make_sampler(f"store:{store}", CONFIG["scales"], PATCH, BATCH, seed=0)
    with strategy.scope():
        trainer = MultiScalePretrainer(EUSR(EUSRConfig(**CONFIG)), sampler.scale_for_step)
        trainer.compile(optimizer=keras.optimizers.Adam(1e-2))
        trainer.generator.build()
    trainer.generator.set_weights(list(np.load(initial_weights).values()))
    fit_run(trainer, sampler.dataset, RunOptions(run_dir, steps, 2, resume=True, tensorboard=False), verbose=0)
    return trainer.generator.get_weights()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch_two_workers(tmp_path, run_dir, store, steps, initial_weights):
    """Starts worker 0 (chief) and worker 1 on free localhost ports; returns, per worker, its
    final weights and the LR rows its replica was given at step 0."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    processes, outputs = [], []
    for index in range(2):
        out = tmp_path / f"worker{index}_steps{steps}.npz"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1", "TMPDIR": str(tmp_path / "tmp"),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),  # this checkout's code
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        job = json.dumps({"run_dir": str(run_dir), "store": str(store), "steps": steps,
                          "initial_weights": str(initial_weights), "out": str(out)})
        log = open(tmp_path / f"worker{index}_steps{steps}.log", "w")
        processes.append(subprocess.Popen([sys.executable, __file__, job], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        outputs.append((out, log))
    try:
        for process in processes:
            process.wait(timeout=WORKER_TIMEOUT)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for _, log in outputs:
            log.close()
    for index, process in enumerate(processes):
        assert process.returncode == 0, Path(outputs[index][1].name).read_text()[-3000:]
    return [(list(np.load(out).values())[1:], np.load(out)["arr_0"]) for out, _ in outputs]


def test_tf_config_is_checked_with_a_clear_message(monkeypatch):
    from eusr_perceptual.training.strategy import StrategyError, check_tf_config, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(StrategyError, match="needs the TF_CONFIG environment variable.*worker 0 is the chief"):
        make_strategy("multi-worker")
    with pytest.raises(StrategyError, match="TF_CONFIG is malformed .JSONDecodeError"):
        check_tf_config("{cluster: }")
    with pytest.raises(StrategyError, match="TF_CONFIG is malformed .KeyError: 'task'"):
        check_tf_config('{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(StrategyError, match="lists of 'host:port'"):
        check_tf_config('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(StrategyError, match=r"task worker:2 is not in its cluster \['worker'\] \(worker: 2 tasks\)"):
        check_tf_config('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}')
    with pytest.raises(StrategyError, match="unknown strategy 'horovod'; use one of default, mirrored, multi-worker, tpu"):
        make_strategy("horovod")


def test_each_replica_gets_its_rows_of_the_global_batch(two_cpu_strategy):
    import tensorflow as tf

    from eusr_perceptual.training.strategy import is_chief, per_replica_batches

    def make_dataset(start_step):  # the global batch of step b: rows 100 b + 0..3
        return tf.data.Dataset.counter(start_step).map(
            lambda b: (tf.reshape(tf.range(4, dtype=tf.int64) + 100 * b, [4, 1]), tf.fill([4, 2], b)))

    assert is_chief(two_cpu_strategy)
    iterator = iter(per_replica_batches(two_cpu_strategy, make_dataset, start_step=7))
    for step in (7, 8):
        lr, hr = (two_cpu_strategy.experimental_local_results(part) for part in next(iterator))
        assert [t.numpy().ravel().tolist() for t in lr] == [[100 * step, 100 * step + 1], [100 * step + 2, 100 * step + 3]]
        assert [t.shape for t in hr] == [(2, 2), (2, 2)]
    single = tf.distribute.get_strategy()
    assert per_replica_batches(single, make_dataset, 3).element_spec == make_dataset(3).element_spec
    with pytest.raises(ValueError, match=r"global batch size \(3\) must be a known multiple of the 2 replicas"):
        per_replica_batches(two_cpu_strategy, lambda s: tf.data.Dataset.from_tensors(tf.zeros([3, 1])), 0)


@pytest.mark.slow
def test_two_workers_match_one_process_and_resume_exactly(tmp_path):
    """Worker processes on localhost (CPU) train 2 steps, are restarted with --resume for 2 more;
    their weights equal the single-process run's over the same 4 global batches."""
    import keras
    import tensorflow as tf
    from PIL import Image

    from eusr_perceptual.data.store import StoreSettings
    from eusr_perceptual.data.store_prepare import prepare_store
    from eusr_perceptual.models.eusr import EUSR, EUSRConfig

    rng = np.random.default_rng(0)
    for index in range(3):
        image = np.linspace(0, 200, 40 * 48 * 3).reshape(40, 48, 3) + rng.integers(0, 50, (40, 48, 3))
        (tmp_path / "photos").mkdir(exist_ok=True)
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / "photos" / f"{index}.png")
    store = tmp_path / "store"
    prepare_store(store, StoreSettings((str(tmp_path / "photos"),), CONFIG["scales"]), workers=0, progress=False)
    keras.utils.set_random_seed(1)
    generator = EUSR(EUSRConfig(**CONFIG))
    generator.build()
    initial = tmp_path / "initial.npz"
    np.savez(initial, *generator.get_weights())
    (tmp_path / "tmp").mkdir()

    reference = pretrain(tmp_path / "single", store, 4, initial, tf.distribute.get_strategy())
    _launch_two_workers(tmp_path, tmp_path / "multi", store, 2, initial)
    (chief, chief_rows), (other, other_rows) = _launch_two_workers(tmp_path, tmp_path / "multi", store, 4, initial)

    from eusr_perceptual.data.samplers import make_sampler

    global_lr = make_sampler(f"store:{store}", CONFIG["scales"], PATCH, BATCH, seed=0).batch(0)[0]
    np.testing.assert_array_equal(chief_rows, global_lr[:2])  # each worker its half of the global batch
    np.testing.assert_array_equal(other_rows, global_lr[2:])

    # Adam at 1e-2 moves a weight by about 1e-2 a step (other batches would show as such);
    # two half-batch gradients summed differ from one batch's by float rounding only.
    assert np.abs(reference[0] - np.load(initial)["arr_0"]).max() > 1e-2
    for mine, theirs, single in zip(chief, other, reference):
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_allclose(mine, single, rtol=0, atol=1e-4)
    checkpoints = sorted(path.name for path in (tmp_path / "multi" / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                           "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert sorted(path.name for path in (tmp_path / "multi").iterdir()) == ["checkpoints", "config.json", "log.csv"]
    assert len((tmp_path / "multi" / "log.csv").read_text().splitlines()) == 3  # header, step 2 (first run), step 4
    assert json.loads((tmp_path / "multi" / "config.json").read_text())["resumes"][0]["at_step"] == 2
    assert not list((tmp_path / "tmp").iterdir())  # the non-chief's temporary folders are gone


def _worker_main(job):
    from eusr_perceptual.training.strategy import make_strategy, per_replica_batches

    strategy = make_strategy("multi-worker")  # before any other TensorFlow op (and import)
    from eusr_perceptual.data.samplers import make_sampler

    sampler = make_sampler(f"store:{job['store']}", CONFIG["scales"], PATCH, BATCH, seed=0)
    lr, _ = next(iter(per_replica_batches(strategy, sampler.dataset, 0)))
    weights = pretrain(job["run_dir"], job["store"], job["steps"], job["initial_weights"], strategy)
    np.savez(job["out"], strategy.experimental_local_results(lr)[0].numpy(), *weights)


if __name__ == "__main__":
    _worker_main(json.loads(sys.argv[1]))
