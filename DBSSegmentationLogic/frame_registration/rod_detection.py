"""Rod detection: bright dots in each axial slice -> straight 3D rods -> N-localizers.

1. The image is viewed as a stack of slices along the array axis closest to the image's S axis (the
   acquisition axis of an axial frame CT or MRI), whatever its storage order.
2. In each slice, dots are bright blobs of about the rod's size: the negative Laplacian of Gaussian at
   the rod's scale, thresholded relative to the strongest blobs of the image, split into 2D connected
   components; components too large for a rod cut by a slice (skull, the plates holding the rods, the
   head) are cut again at higher levels, keeping only clear peaks, and what stays too large is dropped.
   A dot's position is the centroid of its core (response above 60 % of its peak): the rod's axis crossing
   the slice's central plane (Brown 2015), unbiased by thick slices because the rod is straight.
3. Rods are straight lines through dots of successive slices, found by RANSAC (pairs of dots a few
   slices apart), one dot per slice, refined by least squares. Noise, metal and anatomy give dots that
   line up with nothing.
4. An N-localizer is two parallel rods as far apart as a model N's verticals (within 4 mm) with a third
   rod in their plane crossing between them (the ends of a plate holding the rods also line up, but
   not at the right width).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: A rod cut by a slice is at most this long (mm) in the slice: diameter / cos + thickness * tan at 60°.
MAX_DOT_EXTENT_MM = 18.0
#: ... and covers at most this area (mm²).
MAX_DOT_AREA_MM2 = 90.0
#: Dots are kept above this fraction of the typical strongest dot response; components too large for a
#: dot are cut again at the next levels.
RELATIVE_THRESHOLDS = (0.3, 0.42, 0.52, 0.62)
#: ... where a piece of a too-large component must peak at this factor times the level to be a dot.
RESPLIT_PEAK_FACTOR = 1.15
#: A dot peaks at least at this fraction of the reference (the noisy crest of a plate's ridge does not).
MIN_PEAK = 0.5
#: Only the strongest dots of each slice are kept (a localizer has at most a dozen rods; metal streaks,
#: bone texture and noise can make thousands of small blobs).
MAX_DOTS_PER_SLICE = 40
#: Largest angle between a rod and the slice normal (diagonal at 45° plus frame tilt).
MAX_ROD_ANGLE_DEG = 65.0


@dataclass
class SliceStack:
    """The image as slices along array axis 0 (``array[k, j, i]``), k roughly along image S."""

    array: np.ndarray
    ijk_to_ras: np.ndarray

    @property
    def in_plane_mm(self) -> tuple[float, float]:
        spacing = np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)
        return float(spacing[0]), float(spacing[1])

    @property
    def slice_spacing_mm(self) -> float:
        return float(np.linalg.norm(self.ijk_to_ras[:3, 2]))

    @property
    def slice_normal(self) -> np.ndarray:
        """Unit normal of the slices (RAS), oriented towards increasing slice index."""
        normal = np.cross(self.ijk_to_ras[:3, 0], self.ijk_to_ras[:3, 1])
        normal /= np.linalg.norm(normal)
        return normal if normal @ self.ijk_to_ras[:3, 2] > 0 else -normal


def slice_stack(array: np.ndarray, ijk_to_ras: np.ndarray) -> SliceStack:
    """Reorder the array so that its first axis is the one whose direction is closest to image S."""
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    directions = ijk_to_ras[:3, :3] / np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    slice_ijk_axis = int(np.argmax(np.abs(directions[2])))  # 0 = i, 1 = j, 2 = k
    slice_array_axis = 2 - slice_ijk_axis
    others = [axis for axis in range(3) if axis != slice_array_axis]  # array axes (q, r) -> new (j, i)
    order = [slice_array_axis] + others
    columns = [2 - others[1], 2 - others[0], 2 - slice_array_axis]
    matrix = np.eye(4)
    matrix[:3, :3] = ijk_to_ras[:3, columns]
    matrix[:3, 3] = ijk_to_ras[:3, 3]
    return SliceStack(np.transpose(array, order), matrix)


@dataclass
class Dots:
    """Candidate rod dots: one row per dot."""

    slice: np.ndarray  # int (n,)
    ijk: np.ndarray  # (n, 3) fractional i, j and the slice index k
    ras: np.ndarray  # (n, 3)
    strength: np.ndarray  # (n,) summed response
    area_mm2: np.ndarray  # (n,)
    border: np.ndarray  # bool (n,): touches the edge of the slice (may be cut by the field of view)

    def __len__(self) -> int:
        return len(self.slice)


def detect_dots(stack: SliceStack, rod_diameter_mm: float = 2.0) -> Dots:
    """Bright rod-sized dots in every slice of ``stack``."""
    si, sj = stack.in_plane_mm
    radius = max(rod_diameter_mm / 2.0, 0.5)
    sigma = (0.0, max(radius / sj, 0.8), max(radius / si, 0.8))  # (k, j, i) in voxels
    image = stack.array.astype(np.float32, copy=False)
    # Negative Laplacian of Gaussian in-plane (mm units so that anisotropic pixels weigh alike).
    response = ndimage.gaussian_filter(image, sigma, order=(0, 0, 2), mode="nearest") / np.float32(si * si)
    response += ndimage.gaussian_filter(image, sigma, order=(0, 2, 0), mode="nearest") / np.float32(sj * sj)
    np.negative(response, out=response)
    np.maximum(response, 0, out=response)
    reference = _reference_strength(response)
    empty = Dots(np.zeros(0, int), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0, bool))
    if reference <= 0:
        return empty
    # Components too big for a dot (a rod inside the plate that holds it, touching the skull) are cut
    # again at higher levels, where the rod's core stands alone.
    parts = []
    candidates = np.ones(response.shape, bool)
    for number, level in enumerate(RELATIVE_THRESHOLDS):
        # Inside a too-large component only clear peaks count, not the ridge's noise barely above the cut.
        min_peak = max(MIN_PEAK, RESPLIT_PEAK_FACTOR * level if number else 0.0) * reference
        found, oversize = _components(response, candidates & (response > level * reference), stack, min_peak)
        parts.append(found)
        if oversize is None:
            break
        candidates = oversize
    slice_index, centroid_i, centroid_j, total, area, border = (np.concatenate(column) for column in zip(*parts))
    if len(slice_index) == 0:
        return empty
    # Rank the dots by strength within their slice; keep the strongest few per slice.
    order = np.lexsort((-total, slice_index))
    rank = np.empty(len(order), int)
    starts = np.searchsorted(slice_index[order], slice_index[order], side="left")
    rank[order] = np.arange(len(order)) - starts
    keep = rank < MAX_DOTS_PER_SLICE
    ijk = np.stack([centroid_i, centroid_j, slice_index.astype(float)], axis=1)[keep]
    ras = ijk @ stack.ijk_to_ras[:3, :3].T + stack.ijk_to_ras[:3, 3]
    return Dots(slice_index[keep], ijk, ras, total[keep], area[keep], border[keep])


def _components(response: np.ndarray, mask: np.ndarray, stack: SliceStack, min_peak: float = 0.0):
    """Dot-sized 2D components of ``mask`` whose peak reaches ``min_peak``: (slice, centroid i, centroid j,
    summed response, area mm², touches the border) arrays, and the mask of the components too large for
    a dot (None if none)."""
    si, sj = stack.in_plane_mm
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    labels, count = ndimage.label(mask, structure=in_plane)
    if count == 0:
        return (np.zeros(0, int),) + (np.zeros(0),) * 4 + (np.zeros(0, bool),), None
    objects = ndimage.find_objects(labels)
    flat_labels = labels.ravel()
    selected = np.flatnonzero(flat_labels)
    weights = response.ravel()[selected]
    index = flat_labels[selected]
    _, j_index, i_index = np.unravel_index(selected, labels.shape)
    total = np.bincount(index, weights, minlength=count + 1)[1:]
    peak = np.zeros(count + 1)
    np.maximum.at(peak, index, weights)
    # Centroid of the part above 60 % of the peak: the rod's core, not a piece of plate ridge attached to it.
    core = np.maximum(weights - 0.6 * peak[index], 0.0)
    core_total = np.maximum(np.bincount(index, core, minlength=count + 1)[1:], 1e-12)
    centroid_i = np.bincount(index, core * i_index, minlength=count + 1)[1:] / core_total
    centroid_j = np.bincount(index, core * j_index, minlength=count + 1)[1:] / core_total
    area = np.bincount(index, minlength=count + 1)[1:] * si * sj
    k_slice = np.array([o[0].start for o in objects])
    extent_j = np.array([(o[1].stop - o[1].start) * sj for o in objects])
    extent_i = np.array([(o[2].stop - o[2].start) * si for o in objects])
    border = np.array([o[1].start == 0 or o[2].start == 0 or o[1].stop == labels.shape[1]
                       or o[2].stop == labels.shape[2] for o in objects])
    keep = (area <= MAX_DOT_AREA_MM2) & (np.hypot(extent_i, extent_j) <= MAX_DOT_EXTENT_MM)
    oversize = None
    keep_oversize = ~keep
    if min_peak > 0:
        keep &= peak[1:] >= min_peak
    if keep_oversize.any():
        lookup = np.concatenate([[False], keep_oversize])
        oversize = lookup[labels]
    return (k_slice[keep], centroid_i[keep], centroid_j[keep], total[keep], area[keep], border[keep]), oversize


def _reference_strength(response: np.ndarray) -> float:
    """Typical response of the strongest rod dots: the median of the brightest local maxima (two per slice)
    of the response that persists into the next slice (within a pixel), so that isolated bright voxels
    (noise, speckles) do not set the scale."""
    if response.shape[0] < 2:
        return 0.0
    nearby = ndimage.maximum_filter(response, size=(1, 3, 3))
    persistent = np.minimum(response[:-1], nearby[1:])
    peaks = persistent[(persistent == ndimage.maximum_filter(persistent, size=(1, 3, 3))) & (persistent > 0)]
    if peaks.size == 0:
        return 0.0
    top = max(20, 2 * response.shape[0])
    return float(np.median(np.sort(peaks)[-top:]))


@dataclass
class Rod:
    """A straight line of dots through successive slices (image RAS)."""

    point: np.ndarray  # a point on the axis (the dots' mean)
    direction: np.ndarray  # unit, towards increasing slice index
    dot_indices: np.ndarray  # indices into Dots, one per slice, sorted by slice
    rms_mm: float  # RMS distance of its dots to the axis

    def distance(self, points: np.ndarray) -> np.ndarray:
        offset = points - self.point
        return np.linalg.norm(offset - np.outer(offset @ self.direction, self.direction), axis=1)


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
    return centre, vt[0]


def _one_per_slice(candidates: np.ndarray, distances: np.ndarray, slices: np.ndarray) -> np.ndarray:
    """Of the candidate dots, the closest one to the line in each slice."""
    order = np.lexsort((distances[candidates], slices[candidates]))
    chosen = candidates[order]
    _, first = np.unique(slices[chosen], return_index=True)
    return chosen[first]


def find_rods(dots: Dots, stack: SliceStack, tolerance_mm: float | None = None, min_length_mm: float = 25.0,
              max_rods: int = 30, hypotheses: int = 200, seed: int = 0) -> list[Rod]:
    """Straight rods through the dots (RANSAC on pairs of dots a few slices apart, least-squares refit)."""
    if len(dots) < 4:
        return []
    rng = np.random.default_rng(seed)
    si, sj = stack.in_plane_mm
    spacing = stack.slice_spacing_mm
    tolerance = tolerance_mm or max(1.5, 0.6 * max(si, sj))
    min_dots = max(4, int(math.ceil(min_length_mm / spacing)))
    normal = stack.slice_normal
    max_slope = math.tan(math.radians(MAX_ROD_ANGLE_DEG))
    points = dots.ras
    slices = dots.slice
    available = np.ones(len(dots), bool)
    rods: list[Rod] = []
    gap = max(2, int(round(8.0 / spacing)))  # pair dots about 8-16 mm apart along the slice axis
    failures = 0
    while len(rods) < max_rods and available.sum() >= min_dots and failures < 2:
        pool = np.flatnonzero(available)
        by_slice = {k: pool[slices[pool] == k] for k in np.unique(slices[pool])}
        best, best_count = None, 0
        # Hypotheses are scored on a random subset of the dots when there are many (metal streaks).
        scoring = pool if len(pool) <= 2500 else rng.choice(pool, 2500, replace=False)
        for _ in range(hypotheses):
            first = pool[rng.integers(len(pool))]
            partner_slice = slices[first] + rng.integers(gap, 2 * gap + 1)
            partners = by_slice.get(partner_slice)
            if partners is None or len(partners) == 0:
                continue
            delta = points[partners] - points[first]
            along = delta @ normal
            sideways = np.linalg.norm(delta - np.outer(along, normal), axis=1)
            partners = partners[sideways <= np.abs(along) * max_slope + tolerance]
            if len(partners) == 0:
                continue
            second = partners[rng.integers(len(partners))]
            direction = points[second] - points[first]
            direction /= np.linalg.norm(direction)
            offset = points[scoring] - points[first]
            distance = np.linalg.norm(offset - np.outer(offset @ direction, direction), axis=1)
            count = len(np.unique(slices[scoring[distance < tolerance]]))
            if count > best_count:
                best, best_count = (points[first], direction), count
        if best is None or best_count < min_dots * len(scoring) / len(pool):
            failures += 1
            continue
        point, direction = best
        members = np.zeros(0, int)
        for _ in range(3):
            offset = points[pool] - point
            distance = np.linalg.norm(offset - np.outer(offset @ direction, direction), axis=1)
            inliers = pool[distance < tolerance]
            if len(inliers) < 2:
                break
            all_distance = np.zeros(len(points))
            all_distance[pool] = distance
            members = _one_per_slice(inliers, all_distance, slices)
            if len(members) < 2:
                break
            point, direction = _fit_line(points[members])
        if len(members) < min_dots:
            failures += 1
            continue
        if direction @ normal < 0:
            direction = -direction
        if direction @ normal < math.cos(math.radians(MAX_ROD_ANGLE_DEG)):
            available[members] = False  # a line lying in the slices (a plate edge, a table), not a rod
            continue
        members = _contiguous(members, slices, max_gap=max(3, int(round(6.0 / spacing))))
        if len(members) < min_dots:
            available[members] = False
            continue
        point, direction = _fit_line(points[members])
        if direction @ normal < 0:
            direction = -direction
        rod = Rod(point, direction, members[np.argsort(slices[members])], 0.0)
        rod.rms_mm = float(np.sqrt(np.mean(rod.distance(points[members]) ** 2)))
        rods.append(rod)
        available[members] = False
        failures = 0
    return rods


def _contiguous(members: np.ndarray, slices: np.ndarray, max_gap: int) -> np.ndarray:
    """The longest run of members without a slice gap larger than ``max_gap`` (a rod is one piece)."""
    order = members[np.argsort(slices[members])]
    breaks = np.flatnonzero(np.diff(slices[order]) > max_gap)
    runs = np.split(order, breaks + 1)
    return max(runs, key=len)


@dataclass
class DetectedN:
    """Three detected rods forming an N: first vertical, diagonal, second vertical (image order)."""

    vertical_1: Rod
    diagonal: Rod
    vertical_2: Rod
    width_mm: float
    triples: list = field(default_factory=list)  # (slice, dot a, dot b, dot c, fraction t)


def find_n_localizers(rods: list[Rod], dots: Dots, widths_mm, diagonal_angles_deg=None,
                      width_tolerance_mm: float = 4.0, angle_tolerance_deg: float = 6.0,
                      parallel_deg: float = 4.0, coplanar_mm: float = 3.0,
                      fraction_range: tuple[float, float] = (0.06, 0.94)) -> list[DetectedN]:
    """N-localizers among the rods: two parallel rods about a model N's width apart and a rod in their
    plane crossing between them at about that N's diagonal angle. Each rod is used at most once (the N
    with more complete slices first)."""
    candidates = []
    widths = np.asarray(widths_mm, dtype=float)
    angles = None if diagonal_angles_deg is None else np.asarray(diagonal_angles_deg, dtype=float)
    for a_index, a in enumerate(rods):
        for b_index, b in enumerate(rods):
            if b_index <= a_index:
                continue
            if math.degrees(math.acos(min(1.0, abs(float(a.direction @ b.direction))))) > parallel_deg:
                continue
            offset = b.point - a.point
            width = float(np.linalg.norm(offset - (offset @ a.direction) * a.direction))
            matching = np.abs(widths - width) <= width_tolerance_mm
            if not matching.any():
                continue
            normal = np.cross(a.direction, offset)
            normal /= np.linalg.norm(normal)
            for c_index, c in enumerate(rods):
                if c_index in (a_index, b_index):
                    continue
                angle = math.degrees(math.acos(min(1.0, abs(float(c.direction @ a.direction)))))
                if angle < 10.0:
                    continue
                if angles is not None and np.min(np.abs(angles[matching] - angle)) > angle_tolerance_deg:
                    continue
                if np.median(np.abs((dots.ras[c.dot_indices] - a.point) @ normal)) > coplanar_mm:
                    continue
                triples = _triples(a, c, b, dots, fraction_range)
                if len(triples) >= 3:
                    candidates.append(DetectedN(a, c, b, width, triples))
    # Most complete slices first; among equals, the width closest to a model N's.
    candidates.sort(key=lambda n: (-len(n.triples), float(np.min(np.abs(widths - n.width_mm)))))
    chosen: list[DetectedN] = []
    used: set = set()
    for n in candidates:
        ids = {id(n.vertical_1), id(n.diagonal), id(n.vertical_2)}
        if ids & used:
            continue
        chosen.append(n)
        used |= ids
    return chosen


def _triples(a: Rod, c: Rod, b: Rod, dots: Dots, fraction_range) -> list:
    """Slices where the three rods all have a dot: (slice, index a, index diagonal, index b, fraction)."""
    by_slice = [{int(dots.slice[i]): int(i) for i in rod.dot_indices} for rod in (a, c, b)]
    ends = [(int(dots.slice[rod.dot_indices].min()), int(dots.slice[rod.dot_indices].max())) for rod in (a, c, b)]
    triples = []
    for k in sorted(set(by_slice[0]) & set(by_slice[1]) & set(by_slice[2])):
        if any(k in end for end in ends):
            continue  # a rod's first or last dot may be cut short by the slice
        ia, ic, ib = by_slice[0][k], by_slice[1][k], by_slice[2][k]
        if dots.border[[ia, ic, ib]].any():
            continue
        pa, pc, pb = dots.ras[ia], dots.ras[ic], dots.ras[ib]
        span = pb - pa
        length2 = float(span @ span)
        if length2 < 1e-6:
            continue
        t = float((pc - pa) @ span / length2)
        off_line = np.linalg.norm((pc - pa) - t * span)
        if not fraction_range[0] <= t <= fraction_range[1] or off_line > 3.0:
            continue
        triples.append((k, ia, ic, ib, t))
    return triples
