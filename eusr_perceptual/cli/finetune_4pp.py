"""Fine-tunes a pretrained EUSR into 4PP-EUSR (Choi et al. 2018, sections 3.2-3.4, 4.3, 5).

    # The paper's run (section 4.3), from the outputs of the two earlier phases:
    eusr-finetune-4pp --init-from runs/pretrain_paper/generator.keras \\
        --aesthetic runs/nima_ava/export/nima_ava.keras \\
        --subjective runs/nima_tid2013/export/nima_tid2013.keras \\
        --data div2k:/data/DIV2K:train+valid --run-dir runs/4pp_eusr --mixed-precision

    eusr-finetune-4pp --run-dir runs/4pp_eusr --resume     # continue after a stop
    eusr-finetune-4pp --preset 4pp_eusr_alpha_r_0.3 ...    # eq. 9 / Table 5
    eusr-finetune-4pp --preset 4pp_eusr_without_lg ...     # a Table 4 ablation (or --weight l_g=0)
    eusr-finetune-4pp --demo    # everything on the embedded photographs, tiny models

4PP-EUSR is a configuration of the project's one adversarial trainer (multi-pass producer,
sigmoid cross-entropy, terms l_r, l_g, l_as, l_ar, l_ss, l_sr); this tool is ``eusr-train-gan``
restricted to its presets, plus the demo chain. Writes <run-dir>/checkpoints, config.json,
log.csv, tensorboard/, generator.keras, the SavedModel export and evaluation.md (Table 3 routes
of the pretrained and the fine-tuned model).
"""

from __future__ import annotations

import argparse

from eusr_perceptual.errors import UsageError
from eusr_perceptual.cli.command import command
from eusr_perceptual.cli.gan_flags import (add_gan_flags, config_changes, default_run_dir, export_name,
                                           gan_config_from_args, listed_presets, run_options)
from eusr_perceptual.configs.presets import FOURPP_DEMO, FOURPP_PRESETS
from eusr_perceptual.pipelines import gan_run  # gan_run.run_gan at call time: tests replace it
from eusr_perceptual.pipelines.fourpp_demo import run_fourpp_demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true",
                        help="pretrain a tiny EUSR, train both predictors and fine-tune, on the embedded photographs")
    add_gan_flags(parser, FOURPP_PRESETS, "4pp_eusr")
    return parser.parse_args(argv)


@command()
def main(argv=None) -> int:
    args = parse_args(argv)
    if listed_presets(args, FOURPP_PRESETS):
        return 0
    if args.demo:
        if args.resume:
            raise UsageError("the --demo chain (pre-training, both predictors, fine-tuning) cannot --resume; "
                             "run it again with another --run-dir")

        run_fourpp_demo(args.run_dir or default_run_dir("finetune_demo"), config_changes(args, FOURPP_DEMO),
                        args.export_dir, None if args.no_eval else args.eval_data)
        return 0
    config = gan_config_from_args(args, FOURPP_PRESETS)
    gan_run.run_gan(config, args.run_dir or default_run_dir(args.preset), resume=args.resume,
            **run_options(args, export_name(args, config, FOURPP_PRESETS)))
    return 0
