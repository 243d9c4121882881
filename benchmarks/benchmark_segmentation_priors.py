"""Which atlas prior for the segmentation engine (issue 10, item 3): CIT168 (shipped), BigBrain, both averaged,
and the shipped anatomy at other smoothings, on the engine's 10 tuning cases.

    .venv/bin/python benchmarks/benchmark_segmentation_priors.py [--out benchmarks/results]

Cases: ``segmentation_cases.make_case`` with the tuning seeds 0-9 of benchmark_segmentation.py (T2, SWI, T1,
QSM, T2 on BigBrain, T1 on BigBrain, SWI on BigBrain, FLAIR, T2, SWI), each localized once and segmented by
the whole engine (``engine.segment``) with each prior. The BigBrain prior is the CIT168 anatomy with its
target nuclei replaced by the BigBrain ones (segmentation_cases.bigbrain_anatomy), built like the shipped
one (segmentation_cases.engine_prior); "both" averages the two priors' probabilities. Every prior that
contains an anatomy is optimistic on the cases drawn from it: the CIT168 prior on the CIT168-anatomy cases,
the BigBrain and the averaged priors on the BigBrain ones.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import segmentation_cases as cases
from benchmark_segmentation import evaluate

from DBSSegmentationLogic.io.volumes import Volume
from DBSSegmentationLogic.segmentation import engine, localization, priors

TUNING_CASES = [(0, "T2", "cit168_varied"), (1, "SWI", "cit168_varied"), (2, "T1", "cit168_varied"),
                (3, "QSM", "cit168_varied"), (4, "T2", "bigbrain"), (5, "T1", "bigbrain"), (6, "SWI", "bigbrain"),
                (7, "FLAIR", "cit168_varied"), (8, "T2", "cit168_varied"), (9, "SWI", "cit168_varied")]
SIGMAS_MM = (0.3, 0.7)


def build_priors(model: engine.LoadedModel) -> dict:
    shipped_sigma = float(model.manifest["parameters"]["prior_sigma_mm"])
    cit168 = model.prior
    bigbrain = cases.engine_prior(cases.bigbrain_anatomy(), model)
    both = priors.AtlasPrior((cit168.probabilities + bigbrain.probabilities) / 2, cit168.codes, cit168.groups,
                             cit168.output_labels, model.manifest)
    out = {f"CIT168 (shipped, sigma {shipped_sigma} mm)": cit168, "BigBrain": bigbrain, "CIT168 + BigBrain": both}
    anatomy = cases.template_data()[1]
    for sigma in SIGMAS_MM:
        out[f"CIT168, sigma {sigma} mm"] = cases.engine_prior(anatomy, model, sigma)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = engine.load_model(device="cpu")
    candidates = build_priors(model)
    started = time.perf_counter()
    rows = []
    for seed, family, anatomy in TUNING_CASES:
        case = cases.make_case(seed, family, anatomy)
        volume = Volume(case.image, case.ijk_to_ras)
        located = localization.register_to_template(volume)
        row = {"case": case.name, "anatomy": anatomy, "dice": {}}
        for name, prior in candidates.items():
            candidate = engine.LoadedModel(prior, model.device, model.manifest)
            labels = engine.segment(volume, candidate, localization=located).labels.array
            scores = evaluate(labels, case.truth, volume)
            row["dice"][name] = {s: v["dice"] for s, v in scores.items()}
        rows.append(row)
        print(case.name, " | ".join(f"{n} {np.mean(list(d.values())):.3f}" for n, d in row["dice"].items()), flush=True)
    lines = ["| prior | CIT168-anatomy cases (7) | BigBrain-anatomy cases (3) | STN (CIT168 / BigBrain cases) |",
             "|---|---|---|---|"]
    summary = {}
    for name in candidates:
        cells = []
        for anatomy in ("cit168_varied", "bigbrain"):
            chosen = [r["dice"][name] for r in rows if r["anatomy"] == anatomy]
            cells.append((float(np.mean([np.mean(list(d.values())) for d in chosen])),
                          float(np.mean([[d["STN_left"], d["STN_right"]] for d in chosen]))))
        summary[name] = cells
        lines.append(f"| {name} | {cells[0][0]:.3f} | {cells[1][0]:.3f} | {cells[0][1]:.3f} / {cells[1][1]:.3f} |")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "segmentation_priors.md").write_text(
        f"Command: `python benchmarks/benchmark_segmentation_priors.py`; {time.perf_counter() - started:.0f} s.\n\n"
        + text + "\n")
    (args.out / "segmentation_priors.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
