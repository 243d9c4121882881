"""Train the segmentation network on label-driven synthetic images of the CIT168 template.

Reproducible: training case ``s`` is drawn from ``numpy.random.default_rng([seed, s])``; validation
cases from ``default_rng([VALIDATION_ENTROPY, v])``; the benchmark's held-out cases use yet another
entropy (see benchmarks/benchmark_segmentation.py). Network weights are initialised from
``torch.manual_seed(seed)``. CPU, 2 threads by default.

    .venv/bin/python scripts/train_segmentation.py --steps 3000 --out logs/checkpoints

Checkpoints (``last.pt`` and every ``--checkpoint-every`` steps) are written atomically, so a usable
model exists early. ``scripts/export_model.py`` turns one into the shipped model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from DBSSegmentationLogic.io.volumes import read_volume  # noqa: E402
from DBSSegmentationLogic.segmentation import labels as label_codes  # noqa: E402
from DBSSegmentationLogic.segmentation import template  # noqa: E402
from DBSSegmentationLogic.training.model import UNet3D, network_input  # noqa: E402
from DBSSegmentationLogic.training import synthesis  # noqa: E402

VALIDATION_ENTROPY = 1_000_003
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cit168"


def make_generator(data_dir: Path) -> synthesis.LabelDrivenGenerator:
    t1 = read_volume(data_dir / "cit168_t1w.nii.gz")
    cit = read_volume(data_dir / "cit168_labels.nii.gz")
    roi = template.roi_ijk_to_template_ras()
    margin_mm = 20.0
    low = roi[:3, 3] - margin_mm
    high = roi[:3, 3] + np.array(template.ROI_SHAPE_IJK) * template.ROI_SPACING_MM + margin_mm
    return synthesis.LabelDrivenGenerator(t1.array, cit.array, t1.ijk_to_ras, crop_box_ras=np.array([low, high]))


def training_case(generator, rng: np.random.Generator):
    """One ROI case: residual localization error as pose, then the generator's randomisation."""
    cfg = generator.config
    pose = synthesis.random_pose(rng, cfg.rotation_deg, cfg.translation_mm, cfg.scale_range,
                                 template.roi_centre_template_ras())
    return generator.sample(rng, template.roi_array_shape(), pose @ template.roi_ijk_to_template_ras())


def dice_per_class(prediction: torch.Tensor, truth: torch.Tensor, num_classes: int) -> np.ndarray:
    scores = []
    for code in range(1, num_classes):
        p, t = prediction == code, truth == code
        denominator = int(p.sum() + t.sum())
        scores.append(2.0 * int((p & t).sum()) / denominator if denominator else 1.0)
    return np.array(scores)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probabilities = torch.softmax(logits, dim=1)[:, 1:]
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 4, 1, 2, 3)[:, 1:].float()
    intersection = (probabilities * one_hot).sum(dim=(2, 3, 4))
    denominator = probabilities.sum(dim=(2, 3, 4)) + one_hot.sum(dim=(2, 3, 4))
    return 1.0 - ((2 * intersection + 1.0) / (denominator + 1.0)).mean()


def class_weights(step: int, total_steps: int, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights: structures weigh 5x the background at the start, 1x from mid-training
    (without it the network first sits in the all-background minimum for hundreds of steps)."""
    foreground = 1.0 + 4.0 * max(0.0, 1.0 - step / (0.5 * total_steps))
    weights = torch.full((num_classes,), foreground)
    weights[0] = 1.0
    return weights


def save_atomic(obj, path: Path):
    temporary = path.with_name(f".tmp-{path.name}")
    torch.save(obj, temporary)
    os.replace(temporary, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with cit168_t1w/labels.nii.gz")
    parser.add_argument("--out", type=Path, default=Path("logs/checkpoints"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--in-channels", type=int, default=14, choices=(1, 4, 14),
                        help="1: image; 4: + ROI position; 14: + atlas prior of the ten structures")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-cases", type=int, default=6)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--init", type=Path, help="start from this checkpoint's weights (second training stage)")
    parser.add_argument("--rotation-deg", type=float, help="residual rotation per axis (default: SynthesisConfig)")
    parser.add_argument("--translation-mm", type=float, help="residual translation per axis")
    parser.add_argument("--scale-range", type=float, nargs=2, help="per-axis scaling range")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    generator = make_generator(args.data)
    if args.rotation_deg is not None:
        generator.config.rotation_deg = args.rotation_deg
    if args.translation_mm is not None:
        generator.config.translation_mm = args.translation_mm
    if args.scale_range is not None:
        generator.config.scale_range = tuple(args.scale_range)
    num_classes = label_codes.NUM_CLASSES
    model = UNet3D(num_classes, args.base_channels, args.levels, args.in_channels)
    history = []
    if args.init:
        initial = torch.load(args.init, map_location="cpu", weights_only=False)
        model.load_state_dict(initial["state_dict"])
        history = [dict(entry, stage="init") for entry in initial.get("history", [])]
        print(f"initialised from {args.init} (step {initial['step']}; command: {initial['command']})", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 100) * (1 - step / args.steps) ** 0.9)
    validation = [training_case(generator, np.random.default_rng([VALIDATION_ENTROPY, v]))
                  for v in range(args.validation_cases)]
    command = " ".join([Path(sys.executable).name, *sys.argv])
    print(f"command: {command}", flush=True)
    print(f"parameters: {sum(p.numel() for p in model.parameters())}; steps {args.steps}; seed {args.seed}",
          flush=True)
    started = time.time()
    running_loss = 0.0
    for step in range(1, args.steps + 1):
        model.train()
        image, truth = training_case(generator, np.random.default_rng([args.seed, step]))
        logits = model(network_input(image, args.in_channels))
        loss = F.cross_entropy(logits, truth[None], weight=class_weights(step, args.steps, num_classes)) \
            + soft_dice_loss(logits, truth[None])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running_loss += float(loss.detach())
        if step % 50 == 0:
            print(f"step {step} loss {running_loss / 50:.4f} lr {schedule.get_last_lr()[0]:.2e} "
                  f"elapsed_s {time.time() - started:.0f}", flush=True)
            running_loss = 0.0
        if step % args.checkpoint_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                scores = np.mean([dice_per_class(model(network_input(img, args.in_channels)).argmax(1)[0], lab, num_classes)
                                  for img, lab in validation], axis=0)
            entry = {"step": step, "elapsed_s": round(time.time() - started, 1),
                     "validation_mean_dice": round(float(scores.mean()), 4),
                     "validation_dice": {s.name: round(float(d), 4) for s, d in zip(label_codes.STRUCTURES, scores)}}
            history.append(entry)
            print("validation " + json.dumps(entry), flush=True)
            checkpoint = {"architecture": model.architecture, "state_dict": model.state_dict(), "step": step,
                          "seed": args.seed, "command": command, "history": history,
                          "synthesis_config": vars(generator.config)}
            save_atomic(checkpoint, args.out / "last.pt")
            save_atomic(checkpoint, args.out / f"step_{step:05d}.pt")
    print(f"finished in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
