"""Quick comparison of segmentation models (network pipeline only, no registration baseline).

For model selection during training: mean Dice and centroid error on the first N held-out synthetic
cases of the benchmark (same seeds as benchmark_segmentation.py), and, on the real head, the STN/RN
centroids and the distance of each Bejjani STN target to its indirect target (issue 4's check).

    .venv/bin/python benchmarks/compare_segmentation_models.py [--checkpoint logs/.../step_N.pt] [--cases 4] [--no-mirror]

Without --checkpoint the shipped model is used.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from DBSSegmentationLogic.geometry.acpc import AcpcSpace  # noqa: E402
from DBSSegmentationLogic.io.volumes import Volume, read_volume  # noqa: E402
from DBSSegmentationLogic.planning.plan import plan_with_quality  # noqa: E402
from DBSSegmentationLogic.segmentation import engine as segmentation  # noqa: E402
from DBSSegmentationLogic.segmentation import labels as label_codes  # noqa: E402
from DBSSegmentationLogic.segmentation.model import build_model  # noqa: E402
from DBSSegmentationLogic.training import synthesis  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BENCHMARK_ENTROPY = 2_000_017  # as in benchmark_segmentation.py


def load(checkpoint: Path | None) -> segmentation.LoadedModel:
    shipped = segmentation.load_model(device="cpu")
    if checkpoint is None:
        return shipped
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    network = build_model(saved["architecture"])
    network.load_state_dict(saved["state_dict"])
    network.eval()
    return segmentation.LoadedModel(network, torch.device("cpu"), dict(shipped.manifest, architecture=saved["architecture"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--no-mirror", action="store_true", help="switch off the mirror averaging")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load(args.checkpoint)
    t1 = read_volume(DATA / "cit168" / "cit168_t1w.nii.gz")
    cit = read_volume(DATA / "cit168" / "cit168_labels.nii.gz")
    generator = synthesis.LabelDrivenGenerator(t1.array, cit.array, t1.ijk_to_ras)
    box = synthesis.brain_box_ras(t1.array, t1.ijk_to_ras)
    dice, centroid_error = [], []
    for n in range(args.cases):
        (image, matrix), (truth, _), _ = synthesis.synthesize_case(generator, np.random.default_rng([BENCHMARK_ENTROPY, n]), box)
        case = Volume(image, matrix)
        predicted = segmentation.segment(case, model, mirror=not args.no_mirror).labels.array
        case_dice, case_error = [], []
        for structure in label_codes.STRUCTURES:
            p, t = predicted == structure.code, truth == structure.code
            case_dice.append(2.0 * np.sum(p & t) / max(1, p.sum() + t.sum()))
            if p.any():
                centre = [case.ijk_to_ras_points(np.argwhere(m).mean(0)[::-1]) for m in (p, t)]
                case_error.append(float(np.linalg.norm(centre[0] - centre[1])))
            else:
                case_error.append(np.nan)
        dice.append(case_dice)
        centroid_error.append(case_error)
    names = [s.name for s in label_codes.STRUCTURES]
    print(f"synthetic cases: {args.cases}; mean Dice {np.mean(dice):.3f}")
    for name, d, e in zip(names, np.mean(dice, 0), np.nanmean(centroid_error, 0)):
        print(f"  {name:10s} Dice {d:.3f}  centroid error {e:.2f} mm")
    head = read_volume(DATA / "real_heads" / "head01_t1w.nii.gz")
    result = segmentation.segment(head, model, mirror=not args.no_mirror)
    located = result.localization
    acpc = AcpcSpace.from_landmarks(located.ac_ras, located.pc_ras, located.midline_ras)
    plan = plan_with_quality(result.labels, acpc, "stn")
    for s in result.structures:
        if s.name.startswith(("STN", "RN")):
            print(f"real head {s.name:10s} centroid AC-PC {np.round(s.centroid_acpc, 1).tolist()} flags {s.flags or 'ok'}")
    for trajectory in plan["trajectories"]:
        print(f"real head {trajectory['name']}: target AC-PC {np.round(trajectory['target_acpc'], 1).tolist()}, "
              f"{trajectory['direct_to_indirect_mm']:.2f} mm from the indirect target")
    for side, reason in plan["failures"].items():
        print(f"real head {side}: not planned: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
