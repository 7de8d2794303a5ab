"""Prepares a patch store once per dataset and degradation, for fast, bounded-memory training.

    eusr-prepare div2k:/data/DIV2K --out stores/div2k_x248                  # HR + LR x2/x4/x8
    eusr-prepare div2k:/data/DIV2K:train+valid --out stores/ft_x4 --scales 4 --downscaled-copies 2
    eusr-prepare div2k:/data/DIV2K flickr2k:/data/Flickr2K --out stores/df2k_x4 --scales 4
    eusr-prepare div2k:/data/DIV2K --out stores/div2k_sub --scales 4 --crop 480 --step 240

Then train with ``--data store:<out>``. Sources are any ``--data`` form but ``store:``; the
shipped DIV2K/Flickr2K LR images are used when present, the others are made with MATLAB
bicubic. Interrupt it at any time: running the same command again resumes, and brings a
finished store up to date when source files changed. See :mod:`eusr_perceptual.data.store`.

    eusr-prepare --verify --out stores/div2k_x248                            # check every shard's SHA-256
    eusr-prepare div2k:/data/DIV2K --out stores/div2k_x248 --verify          # ... and prepare damaged ones again

A store is checked at every open (its manifest, layout and a 1 MiB sample of each shard) and
refused with "store <path> is damaged: <what>"; ``--verify`` reads it whole.
"""

from __future__ import annotations

import argparse
import logging
import sys

from eusr_perceptual.cli.command import command
from eusr_perceptual.data.store import StoreSettings, open_store
from eusr_perceptual.data.store_prepare import prepare_store
from eusr_perceptual.resize import DEFAULT_RESIZE_CONVENTION, RESIZE_CONVENTIONS


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="*",
                        help="skimage | div2k:<root>[:train|valid|train+valid] | flickr2k:<root> | tfds:div2k | <folder> "
                             "(none with --verify: only check the store in --out)")
    parser.add_argument("--out", required=True, help="store folder (created; resumed if it holds a partial store)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8], help="LR scales to store")
    parser.add_argument("--convention", choices=RESIZE_CONVENTIONS, default=DEFAULT_RESIZE_CONVENTION,
                        help="how LR images missing from the source are made (see eusr_perceptual.resize.imresize_uint8)")
    parser.add_argument("--crop", type=int, default=0, help="BasicSR sub-images of this side (0: whole images)")
    parser.add_argument("--step", type=int, default=0, help="sub-image stride (with --crop)")
    parser.add_argument("--downscaled-copies", type=int, default=0, metavar="FACTOR",
                        help="also store each image's MATLAB-bicubic 1/FACTOR copy (4PP-EUSR fine-tuning: 2)")
    parser.add_argument("--images-per-shard", type=int, default=16, help="source images per shard")
    parser.add_argument("--workers", type=int, help="parallel processes (default: every CPU; 0: this process)")
    parser.add_argument("--overwrite", action="store_true", help="replace a store prepared with other settings")
    parser.add_argument("--verify", action="store_true",
                        help="check the SHA-256 of every shard (reads the whole store); with sources, "
                             "shards that fail it are prepared again")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if not args.sources and not args.verify:
        parser.error("give at least one source (or only --verify, to check the store in --out)")
    return args


@command(logging.WARNING)
def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.sources:
        store = open_store(args.out, check_sources=False)
        size = store.verify()
        print(f"store {args.out} is intact: {len(store)} images, {len(store.manifest['shards'])} shards, "
              f"{size / 2**20:,.1f} MiB match their SHA-256")
        return 0
    settings = StoreSettings(tuple(args.sources), tuple(args.scales), args.convention, args.crop, args.step,
                             args.downscaled_copies, args.images_per_shard)
    try:
        manifest = prepare_store(args.out, settings, workers=args.workers, overwrite=args.overwrite,
                                 progress=not args.quiet, verify=args.verify)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished shards are kept in {args.out}; run the same command again to resume",
              file=sys.stderr)
        return 130
    size = sum(shard["bytes"] for shard in manifest["shards"])
    skipped = manifest["skipped"]
    print(f"\n{len(manifest['images'])} images in {len(manifest['shards'])} shards, {size / 2**20:,.1f} MiB, "
          f"prepared in {manifest['seconds']:.0f} s" + (f"; {len(skipped)} skipped (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    print(f"Train with --data store:{args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
