"""Export a network training checkpoint: weights + manifest.json with SHA-256.

    .venv/bin/python scripts/export_model.py logs/checkpoints/last.pt [--out logs/models] [--figures benchmark.json]

The product no longer ships a network (issue 10: the generative engine replaced it; the last shipped
network, ``step600``, is at commit 14f749d and is measured by benchmarks/benchmark_segmentation.py). The
default output is therefore ``logs/models``, never ``Resources/Models`` (the engine's manifest lives there).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from DBSSegmentationLogic.segmentation import labels as label_codes  # noqa: E402
from DBSSegmentationLogic.segmentation import template  # noqa: E402
from DBSSegmentationLogic.segmentation.priors import sha256_of_file  # noqa: E402

WEIGHTS_NAME = "dbs_unet3d.pt"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "logs" / "models")
    parser.add_argument("--figures", type=Path, help="JSON of benchmark figures to copy into the manifest")
    parser.add_argument("--previous-stage-command", action="append", default=[],
                        help="command(s) of earlier training stages whose checkpoint this one started from")
    args = parser.parse_args(argv)
    checkpoint = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / WEIGHTS_NAME
    temporary = weights.with_name(f".tmp-{weights.name}")
    torch.save(checkpoint["state_dict"], temporary)
    os.replace(temporary, weights)
    manifest = {
        "name": "dbs-basal-ganglia-unet3d",
        "version": f"step{checkpoint['step']}",
        "file": WEIGHTS_NAME,
        "sha256": sha256_of_file(weights),
        "size_bytes": weights.stat().st_size,
        "architecture": checkpoint["architecture"],
        "input": {"roi_shape_ijk": list(template.ROI_SHAPE_IJK), "roi_spacing_mm": template.ROI_SPACING_MM,
                  "roi_origin_template_ras": template.ROI_ORIGIN_TEMPLATE_RAS.tolist(),
                  "normalisation": "percentiles 1 and 99 of the ROI -> 0 and 1, clipped to [-0.5, 1.5]"},
        "labels": label_codes.label_table(),
        "training": {"previous_stage_commands": args.previous_stage_command,
                     "command": checkpoint["command"], "seed": checkpoint["seed"], "steps": checkpoint["step"],
                     "synthesis_config": checkpoint.get("synthesis_config"),
                     "validation_history": checkpoint["history"]},
        "data_source": "CIT168 T1w template and hard labels (MNI152 NLin 2009c, 1 mm), Pauli, Nili & Tyszka 2018, "
                       "Scientific Data 5:180063, CC BY 4.0; synthetic images from scripts/train_segmentation.py. "
                       "No real individual image was used for training.",
    }
    if args.figures:
        manifest["figures"] = json.loads(args.figures.read_text())
    manifest_path = args.out / "manifest.json"
    temporary = manifest_path.with_name(".tmp-manifest.json")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, manifest_path)
    print(f"wrote {weights} ({weights.stat().st_size} bytes) and {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
