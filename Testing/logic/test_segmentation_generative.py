"""The generative engine on small synthetic cases built from the shipped anatomy (no ../shared needed):
the image is drawn on the engine's own widened ROI grid in template space and located by the template's
landmarks (rigid identity), so each case runs in a few seconds.

* dark nuclei moved 2.8 mm: the engine follows them and beats the atlas by a margin;
* no nuclear contrast (T1-like, the nuclei as bright as the white matter): the engine stays at the atlas;
* the uncertainty map has the input's geometry and is low where the contrast is clear;
* the same input gives the same labels (determinism), and the automatic localization the same matrix;
* the decision margin moves a boundary to the stated log-odds and spares the atlas fallbacks;
* a deformation that folds, or a structure that leaves its place, falls back to the atlas, flagged.
"""
import numpy as np
import pytest
from conftest import SAMPLE_CASE
from label_metrics import dice

from DBSSegmentationLogic.io.volumes import Volume, read_volume
from DBSSegmentationLogic.segmentation import engine, generative, priors
from DBSSegmentationLogic.segmentation import labels as L
from DBSSegmentationLogic.segmentation import template as template_space

TISSUE_T2 = {0: 0.05, 201: 1.0, 202: 0.55, 203: 0.5, 204: 0.4}
IRON_T2 = {5: 0.3, 6: 0.25, 7: 0.3, 8: 0.27, 9: 0.22, 16: 0.3}  # GPe, GPi, SNc, RN, SNr, STN: dark
OTHER = 0.5


@pytest.fixture(scope="module")
def anatomy() -> Volume:
    return read_volume(priors.ANATOMY_PATH)


def _shift(anatomy: np.ndarray, codes, shift_kji) -> np.ndarray:
    """Move the given structures by whole voxels; their old place becomes white matter."""
    moved = anatomy.copy()
    mask = np.isin(anatomy, codes)
    moved[mask] = 204
    shifted = np.roll(mask, shift_kji, axis=(0, 1, 2))
    moved[shifted] = np.roll(anatomy, shift_kji, axis=(0, 1, 2))[shifted]
    return moved


def _image(anatomy: np.ndarray, table: dict, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng([3_000_101, seed])
    lut = np.full(256, OTHER, dtype=np.float32)
    for code, value in table.items():
        lut[code] = value
    image = lut[anatomy] + rng.normal(0, noise, anatomy.shape).astype(np.float32)
    return (1000 * np.clip(image, 0, None)).astype(np.float32)


def _t2_table():
    table = dict(TISSUE_T2)
    for code, value in IRON_T2.items():
        table[code] = table[code + 100] = value
    return table


def _segment(model, volume: Volume, **kwargs):
    marks = template_space.load_landmarks()
    return engine.segment(volume, model, marks["ac"], marks["pc"], marks["midline"], **kwargs)


def _truth(anatomy: np.ndarray) -> np.ndarray:
    return L.cit168_to_ours(np.where(anatomy < 200, anatomy, 0))


#: RN, STN and SN of the left side moved 2 mm right (toward the midline) and 2 mm down.
MOVED = (8, 16, 7, 9)
SHIFT_KJI = (-2, 0, 2)


@pytest.fixture(scope="module")
def moved_case(anatomy):
    moved = _shift(anatomy.array.astype(np.int64), MOVED, SHIFT_KJI)
    return anatomy.with_array(_image(moved, _t2_table())), _truth(moved)


@pytest.fixture(scope="module")
def moved_result(model, moved_case):
    return _segment(model, moved_case[0])


def test_moved_dark_nuclei_are_followed_beyond_the_atlas(model, moved_case, moved_result):
    volume, truth = moved_case
    atlas = _segment(model, volume, deform=False).labels.array
    ours = moved_result.labels.array
    names = ["RN_left", "STN_left", "SN_left"]
    engine_dice = {n: dice(ours == L.BY_NAME[n].code, truth == L.BY_NAME[n].code) for n in names}
    atlas_dice = {n: dice(atlas == L.BY_NAME[n].code, truth == L.BY_NAME[n].code) for n in names}
    # measured: engine RN 0.83, STN 0.75, SN 0.83 (0.83 / 0.73 / 0.82 without the decision margin, 0.81 / 0.69 /
    # 0.82 before the Gaussians were fitted to pure voxels), atlas 0.56-0.65 on these moved nuclei (the image
    # lies on the anatomy's grid, half a voxel off the engine's ROI grid, so the labels are interpolated back)
    assert np.mean(list(engine_dice.values())) >= np.mean(list(atlas_dice.values())) + 0.15, (engine_dice, atlas_dice)
    assert min(engine_dice.values()) >= 0.70, engine_dice
    # the centroids follow the 2.7-2.9 mm move about two thirds of the way: measured errors RN 0.95, STN 1.20,
    # SN 0.82 mm (the atlas: 2.83, 2.71, 2.89 mm; before the pure-voxel Gaussians 1.16, 1.54, 0.94). A move
    # this large and this local is beyond what the prior lets the posterior recover in full
    # (docs/segmentation.md).
    errors = []
    for n in names:
        code = L.BY_NAME[n].code
        true_c = volume.ijk_to_ras_points(np.argwhere(truth == code).mean(0)[::-1])
        ours_c = volume.ijk_to_ras_points(np.argwhere(ours == code).mean(0)[::-1])
        atlas_c = volume.ijk_to_ras_points(np.argwhere(atlas == code).mean(0)[::-1])
        errors.append(np.linalg.norm(true_c - ours_c))
        assert errors[-1] <= 0.55 * np.linalg.norm(true_c - atlas_c), (n, true_c, ours_c, atlas_c)
    assert np.mean(errors) <= 1.2, errors
    # the unmoved right side stays where it was
    for n in ("RN_right", "STN_right", "SN_right"):
        code = L.BY_NAME[n].code
        assert dice(ours == code, truth == code) >= 0.75, n
    assert not moved_result.fallback


def test_uncertainty_map_has_the_input_geometry_and_is_low_where_the_contrast_is_clear(moved_case, moved_result):
    volume = moved_case[0]
    uncertainty = moved_result.uncertainty
    assert uncertainty.array.shape == volume.array.shape and np.allclose(uncertainty.ijk_to_ras, volume.ijk_to_ras)
    assert uncertainty.array.dtype == np.float32
    assert 0.0 <= uncertainty.array.min() and uncertainty.array.max() <= 1.0
    rn = moved_result.labels.array == L.BY_NAME["RN_right"].code
    core = rn & ~np.logical_xor(rn, np.roll(rn, 1, 0))  # not the top/bottom boundary
    assert uncertainty.array[core].mean() < 0.3
    for s in moved_result.structures:
        assert s.confidence is not None and 0.0 < s.confidence <= 1.0
        assert s.to_dict()["confidence"] == s.confidence


def test_flat_nuclear_contrast_stays_at_the_atlas(model, anatomy):
    """Every structure as bright as the white matter: nothing to follow, the prior's shape is kept."""
    array = anatomy.array.astype(np.int64)
    table = {0: 0.05, 201: 0.15, 202: 0.45, 203: 0.65, 204: 0.9}
    flat = _image(array, table | {c: 0.9 for c in range(1, 117) if c not in (201, 202, 203, 204)}, seed=1)
    result = _segment(model, anatomy.with_array(flat))
    atlas = _segment(model, anatomy.with_array(flat), deform=False).labels.array
    for s in L.STRUCTURES:
        assert dice(result.labels.array == s.code, atlas == s.code) >= 0.8, s.name
    assert result.fit["max_displacement_mm"] < 2.0


def test_same_input_same_labels(model, moved_case, moved_result):
    again = _segment(model, moved_case[0])
    assert np.array_equal(again.labels.array, moved_result.labels.array)
    assert np.array_equal(again.uncertainty.array, moved_result.uncertainty.array)


def test_folding_deformation_falls_back_to_the_atlas_for_the_whole_case(model, moved_case, monkeypatch):
    real_fit = generative.fit_case

    def folding(*args, **kwargs):
        fit = real_fit(*args, **kwargs)
        fit.min_jacobian = -0.2
        return fit

    monkeypatch.setattr(engine, "fit_case", folding)
    result = _segment(model, moved_case[0])
    atlas = _segment(model, moved_case[0], deform=False).labels.array
    assert "case" in result.fallback and "folds" in result.fallback["case"]
    assert np.array_equal(result.labels.array, atlas)
    assert all("fallback_atlas" in s.flags for s in result.structures)
    assert not result.adequate


def test_structure_leaving_its_place_falls_back_alone():
    prior = np.zeros((L.NUM_CLASSES, 20, 30, 40), dtype=np.float32)
    prior[0] = 1.0
    prior[0, 8:12, 10:14, 10:14], prior[1, 8:12, 10:14, 10:14] = 0.1, 0.9  # STN_left in the atlas
    prior[0, 8:12, 10:14, 25:29], prior[2, 8:12, 10:14, 25:29] = 0.1, 0.9  # STN_right
    posterior = prior.copy()
    posterior[:, 8:12, 10:14, 25:29] = prior[:, 8:12, 10:14, 25:29]
    posterior[1], posterior[0] = 0.0, 1.0 - posterior[2]
    posterior[1, 8:12, 10:14, 19:23], posterior[0, 8:12, 10:14, 19:23] = 0.9, 0.1  # STN_left moved 9 mm
    fit = generative.Fit(posterior, prior, 0.9, np.eye(3, 4), 1.0, [], 0.0)
    guarded, reasons = engine.divergence_guard(fit)
    assert list(reasons) == ["STN_left"] and "centroid moved 9.0 mm" in reasons["STN_left"]
    labels = guarded.argmax(0)
    assert np.array_equal(labels == 1, prior.argmax(0) == 1)  # the atlas's STN_left
    assert np.array_equal(labels == 2, posterior.argmax(0) == 2)  # STN_right kept as fitted


def test_prior_sits_where_the_anatomy_is(model, anatomy):
    """The shipped anatomy lies on the ROI's voxel corners; the prior on the ROI's centres must not be shifted
    against it (nearest sampling at half-voxel positions once distorted every structure by up to 1 mm):
    each target class's centroid, and its volume, agree between the class map and the prior."""
    prior = model.prior
    roi_to_ras = template_space.roi_ijk_to_template_ras()
    for index, code in enumerate(prior.codes):
        if prior.output_labels[index] == 0:
            continue
        mask = anatomy.array == code
        centroid_map = anatomy.ijk_to_ras_points(np.argwhere(mask).mean(0)[::-1])
        weights = prior.probabilities[index]
        kji = np.stack(np.meshgrid(*[np.arange(n) for n in weights.shape], indexing="ij"), -1)
        mean_kji = (kji * weights[..., None]).sum((0, 1, 2)) / weights.sum()
        centroid_prior = mean_kji[::-1] @ roi_to_ras[:3, :3].T + roi_to_ras[:3, 3]
        assert np.linalg.norm(centroid_prior - centroid_map) < 0.1, (priors.class_name(code), centroid_prior, centroid_map)
        assert abs(weights.sum() / mask.sum() - 1.0) < 0.05, priors.class_name(code)


def test_pure_voxel_gaussians_are_not_widened_by_partial_volume():
    """A dark nucleus (10% of the voxels) blurred into bright tissue: fitted on every voxel, its Gaussian takes
    the boundary's mixed voxels and widens; fitted on the pure voxels (prior >= 0.7), it is narrower and its
    mean nearer the truth. A class without pure voxels keeps the estimate it started from."""
    import torch
    from scipy import ndimage

    from DBSSegmentationLogic.segmentation.intensity_model import fit_gaussians, fit_gaussians_to_pure_voxels

    rng = np.random.default_rng(7)
    x = np.arange(4000, dtype=np.float64)
    nucleus = (x % 400 < 40).astype(np.float64)  # 10 nuclei of 40 voxels
    fraction = ndimage.gaussian_filter1d(nucleus, 2.0, mode="wrap")  # partial volume across the boundary
    image = 0.2 * fraction + 1.0 * (1 - fraction) + rng.normal(0, 0.03, x.size)
    soft = ndimage.gaussian_filter1d(nucleus, 1.0, mode="wrap")  # the atlas: right place, soft edges
    third = np.full_like(soft, 1e-3)  # a class that is nowhere pure
    prior = np.stack([soft, 1 - soft, third])
    prior /= prior.sum(0, keepdims=True)
    image_t, prior_t = torch.tensor(image, dtype=torch.float32), torch.tensor(prior, dtype=torch.float32)
    mean, variance = fit_gaussians(image_t, prior_t, iterations=8)
    pure_mean, pure_variance = fit_gaussians_to_pure_voxels(image_t, prior_t, mean, variance, purity=0.7)
    true_sd, all_sd, pure_sd = 0.03, float(variance[0].sqrt()), float(pure_variance[0].sqrt())
    assert all_sd > 2 * true_sd, all_sd  # widened by the mixed voxels: measured 0.083
    assert pure_sd < 0.75 * all_sd and pure_sd < 2 * true_sd, (pure_sd, all_sd)  # measured 0.054
    assert abs(float(pure_mean[0]) - 0.2) < abs(float(mean[0]) - 0.2)  # measured 0.213 against 0.227
    assert float(pure_mean[2]) == float(mean[2]) and float(pure_variance[2]) == float(variance[2])


def test_decision_margin_moves_the_boundary_to_the_stated_log_odds():
    """A posterior ramp across the ROI from background to STN_left: arg-max puts the boundary at 0.5; with a
    0.3-nat margin the STN starts where its odds reach e^0.3 (posterior 0.574). The uncertainty is unchanged."""
    shape = template_space.roi_array_shape()
    ramp = np.linspace(0.0, 1.0, shape[2], dtype=np.float32)
    posterior = np.zeros((L.NUM_CLASSES,) + tuple(shape), dtype=np.float32)
    posterior[1], posterior[0] = ramp, 1.0 - ramp
    roi_grid = Volume(np.zeros(shape, dtype=np.float32), template_space.roi_ijk_to_template_ras())
    margin = np.zeros(L.NUM_CLASSES)
    margin[1] = 0.3
    plain, plain_uncertainty = engine.posterior_to_input(posterior, roi_grid, np.eye(4))
    shifted, shifted_uncertainty = engine.posterior_to_input(posterior, roi_grid, np.eye(4),
                                                             structure_log_odds_margin=margin)
    first_plain, first_shifted = np.argmax(plain[0, 0] == 1), np.argmax(shifted[0, 0] == 1)
    assert ramp[first_plain] > 0.5 >= ramp[first_plain - 1]
    threshold = np.exp(0.3) / (1 + np.exp(0.3))
    assert ramp[first_shifted] > threshold >= ramp[first_shifted - 1]
    assert first_shifted - first_plain == np.count_nonzero((ramp > 0.5) & (ramp <= threshold)) > 0
    assert np.array_equal(plain_uncertainty, shifted_uncertainty)


def test_decision_margin_spares_the_atlas_fallbacks():
    """A structure that fell back to the atlas keeps the atlas's own region (margin 0), as does a whole-case
    fallback (no margin at all); the fitted structures get the engine's margin, background none."""
    parameters = {"structure_log_odds_margin": 0.3}
    margins = engine._decision_margins({"STN_left": "centroid moved 9.0 mm from the atlas"}, parameters)
    assert margins[0] == 0.0 and margins[L.BY_NAME["STN_left"].code] == 0.0
    assert all(margins[s.code] == 0.3 for s in L.STRUCTURES if s.name != "STN_left")
    assert engine._decision_margins({"case": "affine stage scales the volume by 1.80"}, parameters) is None


def test_automatic_localization_is_the_same_in_every_run():
    """The same image, localized three times with ITK allowed several threads, gives bit-identical maps.
    (ITK's multi-threaded metric gradients differed in the 15th digit from run to run; the multi-start grew
    that into localizations, and label maps, that differed between runs of the same command.)"""
    import SimpleITK as sitk

    from DBSSegmentationLogic.segmentation import localization

    volume = read_volume(SAMPLE_CASE / "sample_t1w.nii.gz")
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(threads, 4))
    try:
        matrices = [localization.register_to_template(volume).template_to_input_ras for _ in range(3)]
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == max(threads, 4)  # restored afterwards
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    for matrix in matrices[1:]:
        assert np.array_equal(matrix, matrices[0]), np.abs(matrix - matrices[0]).max()
