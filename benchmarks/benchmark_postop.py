"""Post-operative pipeline benchmark: fusion error, lead errors, time and memory on 512 x 512 x 200 CTs.

    .venv/bin/python benchmarks/benchmark_postop.py [--cases 5] [--seed 100] [--write-docs]

For each case (seeds fixed): a post-operative CT of the bundled sample case (scripts/make_demo_postop_ct.py:
the planning MRI's head with CT values, skull, leads with blooming and streaks, noise) on a 512 x 512 x 200
grid (0.5 mm in-plane, 1 mm slices), under a random rigid pose (rotation 7.5-15° about a random axis,
translation 10-20 mm), with random lead offsets (up to 2 mm per axis) and tilts (up to 4°). The
`dbs-plan postop` command runs in its own process, as the GUI runs it; from its postop.json the
benchmark takes the fusion, the leads and the timings, and compares them with the truth:

- fusion error at each planned target (where the found and the true fusion put the same CT voxel);
- tip, worst contact centre and axis angle errors against the true leads (in MRI RAS);
- the reported Euclidean error minus the true one;
- fusion and localization seconds, the command's wall time and its peak resident memory.

With --write-docs it writes docs/postop.md and copies the first case's figures to docs/figures/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import make_demo_postop_ct as demo  # noqa: E402

from DBSSegmentationLogic.io.volumes import read_volume, write_volume  # noqa: E402
from DBSSegmentationLogic.postop import fusion  # noqa: E402

SAMPLE = REPO_ROOT / "Resources" / "SampleCase"
COMMAND = "benchmarks/benchmark_postop.py"
DEMO_LINES = [
    "## Demo on the bundled sample case", "",
    "```",
    "CASE=Resources/SampleCase; OUT=output/sample_case",
    ".venv/bin/dbs-plan plan --mri $CASE/sample_t1w.nii.gz --labels $CASE/sample_labels.nii.gz \\",
    "  --markups $CASE/landmarks.mrk.json --target stn --mounting lateral-right --out $OUT/plan",
    ".venv/bin/python scripts/make_demo_postop_ct.py --plan $OUT/plan/plan.json \\",
    "  --out-ct $OUT/postop_ct.nii.gz --out-truth $OUT/postop_truth.json      # ~15 s",
    ".venv/bin/dbs-plan postop --plan $OUT/plan/plan.json --ct $OUT/postop_ct.nii.gz --out $OUT/postop   # ~35 s",
    ".venv/bin/python scripts/make_demo_postop_ct.py --check $OUT/postop/postop.json $OUT/postop_truth.json",
    "```", "",
    "The demo CT (384×384×180, 0.6 mm in-plane, 1 mm slices) is made from the sample MRI under a 12° / 15 mm "
    "pose, with leads at the planned trajectories moved by known offsets (left +1.2, −0.8, +1.5 mm RAS; right "
    "−0.9, +1.1, −1.3 mm) and tilted (2° and 3°); `--check` compares the reported tips and errors with the truth "
    "(on this machine: tips within 0.1 mm, errors within 0.1 mm and 0.1°).", "",
    "Tests: `.venv/bin/python -m pytest Testing/logic/test_fusion.py Testing/logic/test_postop_command.py -q`.", "",
]


def make_plan(folder: Path) -> Path:
    out = folder / "plan"
    subprocess.run([sys.executable, "-m", "DBSSegmentationLogic", "plan", "--mri", str(SAMPLE / "sample_t1w.nii.gz"),
                    "--labels", str(SAMPLE / "sample_labels.nii.gz"), "--markups", str(SAMPLE / "landmarks.mrk.json"),
                    "--target", "stn", "--mounting", "lateral-right", "--out", str(out)],
                   check=True, capture_output=True, cwd=REPO_ROOT)  # (VTK's off-screen warnings are not shown)
    return out / "plan.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return float("nan")


def run_case(index: int, seed: int, plan_path: Path, plan: dict, mri, model, work: Path, grid: dict) -> dict:
    rng = np.random.default_rng(seed)
    rotation = float(rng.uniform(0.5, 1.0) * 15.0)
    translation = float(rng.uniform(0.5, 1.0) * 20.0)
    pose = demo.random_pose(rng, rotation, translation, plan["acpc"]["mcp_ras"])
    offsets = {side: tuple(rng.uniform(-2.0, 2.0, 3)) for side in ("left", "right")}
    tilts = {side: float(rng.uniform(0.0, 4.0)) for side in ("left", "right")}
    leads = demo.planned_leads(plan, offsets, tilts)
    started = time.perf_counter()
    ct = demo.make_ct_from_mri(mri, leads, pose, grid["size"], grid["spacing"], grid["slice"], seed=seed, model=model)
    generation_s = time.perf_counter() - started
    ct_path = work / f"case{index}_ct.nii"
    write_volume(ct, ct_path, compress=False)
    del ct
    truth = demo.truth_document(plan, leads, pose, rotation, translation, offsets, tilts)
    out = work / f"case{index}_postop"
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "DBSSegmentationLogic", "postop", "--plan", str(plan_path),
                                "--ct", str(ct_path), "--out", str(out)], capture_output=True, text=True, cwd=REPO_ROOT)
    wall_s = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    if completed.returncode != 0:
        return {"case": index, "seed": seed, "rotation_deg": rotation, "translation_mm": translation,
                "failed": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "no message"}
    result = json.loads((out / "postop.json").read_text(encoding="utf-8"))
    fused = np.array(result["fusion"]["ct_to_mri_ras"])
    targets = [t["target_ras"] for t in plan["trajectories"]]
    fusion_error = fusion.fusion_error_mm(fused, pose, targets)
    tip_errors, contact_errors, angle_errors, reported_minus_true = [], [], [], []
    sides = []
    for lead in result["leads"]:
        true_lead = next(t for t in truth["leads"] if t["side"] == lead["side"])
        sides.append(lead["side"])
        tip_errors.append(float(np.linalg.norm(np.subtract(lead["tip_ras"], true_lead["tip_ras"]))))
        contact_errors.append(float(np.linalg.norm(np.subtract(lead["contact_centres_ras"],
                                                               true_lead["contact_centres_ras"]), axis=1).max()))
        cosine = abs(float(np.dot(lead["direction_ras"], true_lead["direction_ras"])))
        angle_errors.append(float(np.degrees(np.arccos(min(1.0, cosine)))))
        if lead["side"] in result["errors"]:
            reported_minus_true.append(result["errors"][lead["side"]]["euclidean_mm"]
                                       - truth["expected_errors"][lead["side"]]["euclidean_mm"])
    return {
        "case": index, "seed": seed, "rotation_deg": rotation, "translation_mm": translation,
        "sides": sides, "sides_ok": sorted(sides) == ["left", "right"],
        "fusion_error_at_targets_mm": fusion_error.tolist(),
        "tip_error_mm": tip_errors, "contact_error_mm": contact_errors, "axis_angle_error_deg": angle_errors,
        "reported_minus_true_euclidean_mm": reported_minus_true,
        "timings_s": result["timings_s"], "command_wall_s": wall_s, "peak_memory_mb": result["peak_memory_mb"],
        "generation_s": generation_s, "load_average_before": load_before, "load_average_after": load_after,
        "out": str(out),
    }


def format_table(rows: list) -> list:
    lines = ["| case | pose | fusion error at targets (mm) | tip (mm) | worst contact (mm) | axis (°) | "
             "reported − true Euclidean (mm) | fusion (s) | localization (s) | command total (s) | peak memory (MB) | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        pose = f"{row['rotation_deg']:.1f}° / {row['translation_mm']:.1f} mm"
        if "failed" in row:
            lines.append(f"| {row['case']} | {pose} | FAILED: {row['failed']} |||||||||| ")
            continue
        timings = row["timings_s"]
        lines.append(
            f"| {row['case']} | {pose} | {', '.join(f'{v:.2f}' for v in row['fusion_error_at_targets_mm'])} | "
            f"{', '.join(f'{v:.2f}' for v in row['tip_error_mm'])} | {', '.join(f'{v:.2f}' for v in row['contact_error_mm'])} | "
            f"{', '.join(f'{v:.1f}' for v in row['axis_angle_error_deg'])} | "
            f"{', '.join(f'{v:+.2f}' for v in row['reported_minus_true_euclidean_mm'])} | {timings['fusion']:.1f} | "
            f"{timings['localization']:.1f} | {row['command_wall_s']:.1f} | {row['peak_memory_mb']:.0f} | "
            f"{row['load_average_before']:.1f}–{row['load_average_after']:.1f} |")
    return lines


def summary(rows: list) -> dict:
    ok = [row for row in rows if "failed" not in row]
    if not ok:
        return {"failed": len(rows)}
    return {
        "cases": len(rows), "failed": len(rows) - len(ok), "sides_ok": all(row["sides_ok"] for row in ok),
        "fusion_error_max_mm": max(max(row["fusion_error_at_targets_mm"]) for row in ok),
        "fusion_error_mean_mm": float(np.mean([v for row in ok for v in row["fusion_error_at_targets_mm"]])),
        "tip_error_max_mm": max(max(row["tip_error_mm"]) for row in ok),
        "contact_error_max_mm": max(max(row["contact_error_mm"]) for row in ok),
        "axis_error_max_deg": max(max(row["axis_angle_error_deg"]) for row in ok),
        "fusion_s_max": max(row["timings_s"]["fusion"] for row in ok),
        "localization_s_max": max(row["timings_s"]["localization"] for row in ok),
        "fusion_plus_localization_s_max": max(row["timings_s"]["fusion"] + row["timings_s"]["localization"] for row in ok),
        "command_wall_s_max": max(row["command_wall_s"] for row in ok),
        "peak_memory_mb_max": max(row["peak_memory_mb"] for row in ok),
    }


def write_docs(rows: list, stats: dict, args, elapsed_s: float) -> None:
    figures = REPO_ROOT / "docs" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    first = next((row for row in rows if "failed" not in row), None)
    copied = []
    if first:
        for name in sorted(Path(first["out"]).glob("*.png")):
            target = figures / f"postop_{name.name}"
            shutil.copyfile(name, target)
            copied.append(target.name)
    command = (f".venv/bin/python {COMMAND} --cases {args.cases} --seed {args.seed} --write-docs")
    lines = [
        "# Post-operative CT: fusion, electrode localization and placement error", "",
        "`dbs-plan postop` fuses the post-operative CT to the planning MRI, finds each lead's axis, tip and "
        "contacts, assigns its side by the sign of its AC-PC x (never by an image axis) and measures the placement "
        "errors of DESIGN §6 against `plan.json`. See `dbs-plan postop --help`.", "",
        "## Use", "",
        "```",
        "dbs-plan postop --plan PLAN/plan.json --ct postop_ct.nii.gz --out POSTOP        # MRI: the one in plan.json",
        "dbs-plan postop --plan PLAN/plan.json --ct postop_ct.nii.gz --preop-ct preop_ct.nii.gz --out POSTOP",
        "dbs-plan postop --plan PLAN/plan.json --ct postop_ct.nii.gz --transform ct_to_mri.tfm --out POSTOP",
        "dbs-plan postop --plan PLAN/plan.json --ct postop_ct.nii.gz \\",
        "    --manual-lead left -9.1 -14.0 -8.2 -14.5 -2.0 55.0 --manual-lead right 11.0 -13.5 -8.0 18.0 -1.0 55.0 --out POSTOP",
        "```", "",
        "Outputs in `POSTOP/`: `postop.json` (format `dbs-postop/1`: fusion, leads, errors, warnings; every RAS "
        "coordinate in the planning MRI's space), `report.md`, `fusion_quality.png`, `lead_<L|R>_<TARGET>.png`, "
        "`ct_to_mri.tfm` and `postop_points.mrk.json` (tips and contacts, Slicer markups). A failed run leaves an "
        "earlier `POSTOP/` untouched (everything is written to a temporary folder and moved in at the end). "
        "Exit codes 0 / 2 (bad input, one line on stderr) / 3 / 130; `PROGRESS <fraction> <step>` lines on stdout.", "",
        *DEMO_LINES,
        "## Method", "",
        "- **Fusion** (`fusion.py`): rigid Euler transform, Mattes mutual information (48 bins) between the MRI and "
        "the CT seen through a soft-tissue window (-100 to 200 HU). The CT is cropped to the head and block-averaged "
        "to about 1 mm (a 512×512×200 CT becomes about 190×230×200). Metal is left out of the metric: voxels above "
        "the metal threshold more than 12 mm inside the head, in pieces that reach 2000 HU (so neither the skull "
        "vault nor the skull base counts), dilated by 5 mm. The metric is restricted to the MRI's head (or brain, "
        "for a skull-stripped MRI) dilated by 4 mm. Pyramid 4 / 2 / 1 mm: 7 starts at 4 mm (the CT's brain or head "
        "centroid — whichever volume is closer to the MRI's — on the MRI's, rotations 0 and ±10° about each axis), "
        "the best 2 refined at 2 mm, the best of those at 1 mm (4% random samples, regular-step gradient descent).",
        "- **Through a pre-operative CT** (`--preop-ct`): post-op CT to pre-op CT by correlation (window -200 to "
        "1600 HU, metal left out), pre-op CT to MRI by the mutual-information fusion above or `--preop-transform`; "
        "the transforms are chained.",
        "- **User transform** (`--transform FILE`): an ITK transform file (.tfm/.h5/.txt, LPS inside) replaces the "
        "fusion. Convention (`--transform-file-maps`): `mri-to-ct` (default) — the file maps MRI points to CT "
        "points, which is what Slicer writes when you save the transform node under which the CT is moved onto the "
        "MRI, and what ITK/ANTs/BRAINSFit/elastix registrations of the CT (moving) to the MRI (fixed) write; "
        "`ct-to-mri` — the file maps CT points to MRI points. The transform must be rigid. The command writes its "
        "own fusion as `ct_to_mri.tfm` in the `mri-to-ct` convention: load it in Slicer and put the CT under it.",
        "- **Checks** (exit 2, one line): not a CT (no Hounsfield range); the CT does not overlap the MRI after "
        "fusion (less than 40% of the MRI's head inside the CT's head); no lead found; more than two leads; two "
        "leads in one hemisphere; a tip outside the brain (outside the MRI's field of view, less than 3 mm inside "
        "its head/brain outline, or less than 10 mm beneath the CT's scalp and skull); a manual lead whose tip lies "
        "in the other hemisphere. A lead on a side the plan has no trajectory for is reported, with a warning and "
        "no error; a planned side without a lead is warned.",
        "- **Localization** (`electrodes.py`, unchanged) runs on the CT cropped to the head's bounding box (same "
        "result, less to search); leads are moved to the MRI's space by the fusion. `--manual-lead SIDE TIP_R TIP_A "
        "TIP_S PT_R PT_A PT_S` (repeat per side) replaces detection: the tip and one more point up the lead, in the "
        "MRI's RAS (as Slicer shows them with the CT under the fusion transform) or, with `--manual-space ct`, in "
        "the CT's own RAS.",
        "- **Errors** (`placement_error.py`): Euclidean, depth (+ too deep), radial, radial at the target plane, "
        "angular; per axis in RAS, AC-PC and frame axes. The frame is the plan's virtual frame; a plan made with "
        "`--image-to-frame` needs the same file again (`--image-to-frame`), as plan.json does not record it.", "",
        "## Benchmark", "",
        f"Command: `{command}` (about {elapsed_s / 60:.0f} minutes).", "",
        f"Hardware: {os.cpu_count()}-core VM ({cpu_model()}), {memory_gb():.0f} GB RAM, no GPU. "
        "CPU contention: the last column is the 1-minute load average just before and just after each command; the "
        "command itself accounts for up to about 2 (it keeps both cores busy during the fusion), so values well "
        "above 2 mean that other jobs shared the cores and the times are pessimistic.", "",
        f"Cases: {args.cases} (seeds {args.seed}–{args.seed + args.cases - 1}); CT 512×512×200, 0.5 mm in-plane, "
        "1 mm slices, int16, uncompressed NIfTI; rotation 7.5–15° about a random axis and translation 10–20 mm; "
        "lead offsets up to 2 mm per axis and tilts up to 4°; Medtronic 3389 leads at the sample plan's STN "
        "trajectories.", "",
        *format_table(rows), "",
        "Summary: " + ", ".join(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
                                for key, value in stats.items()), "",
        "Fusion error: distance between where the found and the true fusion put the CT voxel lying at each planned "
        "target. Tip / contact / axis: against the true leads, in the MRI's space (so they include the fusion "
        "error). `reported − true`: the Euclidean placement error the command reports minus the true one.", "",
        "**Limits of this benchmark.** The CTs are made from the planning MRI itself (T1 intensities mapped to HU, "
        "plus cupping, a smooth offset field, a synthetic skull, noise, metal with blooming and streaks), so the "
        "fusion is easier than with a real CT and a real MRI: it checks the geometry, the metal exclusion, the "
        "pyramid and the speed, not the accuracy on real scans. On the geometric head phantom of `synthetic_ct` "
        "(a near-ellipsoid) the rotation is barely defined by the image and the fusion is not accurate; that "
        "phantom is used for the localization tests only.", "",
        "## Figures (first case)", "",
    ]
    lines += [f"![{name}](figures/{name})" for name in copied]
    (REPO_ROOT / "docs" / "postop.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote docs/postop.md and {len(copied)} figures")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--size", nargs=3, type=int, default=(512, 512, 200))
    parser.add_argument("--spacing", type=float, default=0.5)
    parser.add_argument("--slice-thickness", type=float, default=1.0)
    parser.add_argument("--write-docs", action="store_true", help="write docs/postop.md and its figures")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "postop_benchmark.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    grid = {"size": tuple(args.size), "spacing": args.spacing, "slice": args.slice_thickness}
    with tempfile.TemporaryDirectory(prefix="postop-benchmark-") as folder:
        work = Path(folder)
        plan_path = make_plan(work)
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
        mri = read_volume(SAMPLE / "sample_t1w.nii.gz")
        model = demo.head_ct_model(mri)
        rows = []
        for index in range(args.cases):
            row = run_case(index, args.seed + index, plan_path, plan, mri, model, work, grid)
            rows.append(row)
            print("\n".join(format_table([row])[2:]), flush=True)
        stats = summary(rows)
        print(json.dumps(stats, indent=1))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "summary": stats, "grid": grid}, indent=1) + "\n", encoding="utf-8")
        if args.write_docs:
            write_docs(rows, stats, args, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
