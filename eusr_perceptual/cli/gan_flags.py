"""The flags every adversarial entry point shares (``eusr-train-gan``, ``eusr-finetune-4pp``),
generated from :class:`~eusr_perceptual.configs.gan.GANConfig` in one place, and the
configuration they give: a preset with overrides, or on ``--resume`` the run's recorded one."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Mapping

from eusr_perceptual.cli.flags import add_config_flags, flag_overrides
from eusr_perceptual.configs.base import ConfigError, resumed_config, saved_config
from eusr_perceptual.configs.gan import GANConfig
from eusr_perceptual.training import STRATEGIES
from eusr_perceptual.errors import UsageError
from eusr_perceptual.training.strategy import make_strategy


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_gan_flags(parser: argparse.ArgumentParser, presets: Mapping[str, GANConfig], default: str) -> None:
    parser.add_argument("--preset", choices=sorted(presets), default=default, help=f"named settings (default: {default})")
    parser.add_argument("--list-presets", action="store_true", help="print every preset with its loss formula and exit")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/<preset>_<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir with its config.json")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: mirrored (all local GPUs), multi-worker (TF_CONFIG), tpu")
    parser.add_argument("--weight", type=_key_value, action="append", default=[], metavar="TERM=W",
                        help="set a loss term's weight (0 = ablation), e.g. --weight l_g=0; repeatable")
    parser.add_argument("--generator-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="override an option of the generator spec, e.g. num_block=8; repeatable")
    parser.add_argument("--discriminator-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="override an option of the discriminator spec; repeatable")
    parser.add_argument("--export-dir", type=Path, help="SavedModel base folder (default: saved_models)")
    parser.add_argument("--export-name", help="SavedModel name (TF Serving --model_name; default: the preset)")
    parser.add_argument("--eval-data", default="skimage",
                        help="held-out images for the final table: skimage (embedded photographs) or a benchmark folder")
    parser.add_argument("--no-eval", action="store_true", help="skip the final table")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    add_config_flags(parser, GANConfig, presets[default])


def config_changes(args: argparse.Namespace, base: GANConfig) -> dict:
    """The settings the command line changes relative to ``base``."""
    changes = flag_overrides(args, GANConfig)
    if args.weight:
        changes["terms"] = base.with_weights(dict(args.weight)).terms
    for field, options in (("generator", args.generator_option), ("discriminator", args.discriminator_option)):
        if options:
            spec = getattr(base, field)
            if spec is None:
                raise ConfigError(f"this preset has no {field}")
            changes[field] = {**spec, **dict(options)}
    return changes


def resumed_gan_config(args: argparse.Namespace, run_dir: Path, changes: dict | None = None) -> GANConfig:
    """The settings ``run_dir`` recorded (as its latest resume left them) with the command
    line's resumable changes (the steps, the learning rates), or with ``changes``; any other
    change is refused, naming the setting and both values."""
    recorded = GANConfig.from_dict(saved_config(run_dir))
    return resumed_config(run_dir, GANConfig, config_changes(args, recorded) if changes is None else changes)


def preset_config(args: argparse.Namespace, base: GANConfig, name: str) -> GANConfig:
    """``base`` (the preset ``name``, or its demo version) with the command line's changes, as given."""
    try:
        return base.replace(preset=name, **config_changes(args, base))
    except TypeError as error:
        raise ConfigError(str(error)) from None


def gan_config_from_args(args: argparse.Namespace, presets: Mapping[str, GANConfig]) -> GANConfig:
    """The preset with the command line's changes; on ``--resume``, the run's recorded settings
    (:func:`resumed_gan_config`)."""
    if args.resume:
        if args.run_dir is None:
            raise UsageError("--resume needs --run-dir (the folder of the run to continue)")
        return resumed_gan_config(args, args.run_dir)
    return preset_config(args, presets[args.preset], args.preset)


def export_name(args: argparse.Namespace, config: GANConfig, presets: Mapping[str, GANConfig]) -> str:
    """The SavedModel name: ``--export-name``, else the run's own preset (recorded in its
    ``config.json``; for a run recorded before presets were, the preset with its description)."""
    if args.export_name:
        return args.export_name
    if config.preset:
        return config.preset
    described = [name for name, preset in presets.items() if preset.description == config.description.split(" [demo")[0]]
    if len(described) != 1:
        raise ConfigError(f"the run's config.json does not name its preset ({config.description!r}); "
                         "give the SavedModel a name with --export-name")
    return described[0]


def list_presets(presets: Mapping[str, GANConfig]) -> str:
    """One block per preset: name, description, loss formula, objective and networks."""
    lines = []
    for name, config in presets.items():
        adversary = f"D {config.discriminator['type']} with {config.objective}" if config.discriminator else "no D"
        lines.append(f"{name}\n    {config.description}\n    loss = {config.formula()}\n"
                     f"    G {config.generator['type']} x{config.scale}; {adversary}; {config.order}")
    return "\n".join(lines)


def listed_presets(args: argparse.Namespace, presets: Mapping[str, GANConfig]) -> bool:
    """Prints the presets and returns True when ``--list-presets`` was given."""
    if args.list_presets:
        print(list_presets(presets))
    return args.list_presets


def run_options(args: argparse.Namespace, name: str) -> dict:
    """The keyword arguments of :func:`~eusr_perceptual.pipelines.gan_run.run_gan` the flags give
    (``name``: the SavedModel name, :func:`export_name`)."""
    return dict(strategy=make_strategy(args.strategy), export_dir=args.export_dir or Path("saved_models"),
                export_name=name, eval_data=None if args.no_eval else args.eval_data,
                verbose=2 if args.quiet else "auto")


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}"

