"""One background post-operative evaluation: the logic's ``postop`` command in a child process.

Pure Python (no ``slicer``, no Qt). The job writes the plan (``plan.json``), the post-operative CT and,
when given, the planning MRI and the pre-operative CT into a scratch folder of its own, then runs

    python -m DBSSegmentationLogic postop --plan plan.json --ct CT [--mri IMG] [--preop-ct CT]
                                          [--transform FILE] [--lead-model NAME] --out DIR

there (fusion of the CT to the MRI, lead localization, errors against the plan). On success
:meth:`PostopJob.outputs` returns ``DIR/postop.json`` as a dict (format ``dbs-postop/1``, every
coordinate in the planning MRI's RAS). Running, polling, cancelling and clean-up are those of
:class:`~.background_job.BackgroundJob`: a cancelled or failed run leaves no file and no node.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from DBSSegmentationLogic.io.exceptions import DBSInputError
from DBSSegmentationLogic.io.staged_output import write_json_atomic
from DBSSegmentationLogic.io.volumes import Volume, write_volume
from DBSSegmentationLogic.postop.leads import LEAD_MODELS

from .background_job import BackgroundJob, logic_command

#: The ``format`` of the ``postop.json`` this module reads.
POSTOP_FORMAT = "dbs-postop/1"


def postop_command(python_executable: Optional[str]) -> list[str]:
    """The logic's post-operative command run by ``python_executable`` (Slicer's own Python in Slicer)."""
    return logic_command(python_executable, "postop")


class PostopJob(BackgroundJob):
    """Evaluate one post-operative CT against a plan in a child process. Make a new job for each run."""

    name = "post-operative evaluation"
    scratch_prefix = "dbs-postop-"

    def __init__(
        self,
        plan: dict,
        ct: Volume,
        mri: Optional[Volume] = None,
        preop_ct: Optional[Volume] = None,
        transform_path=None,
        lead_model: Optional[str] = None,
        sources: Optional[dict] = None,
        python_executable: Optional[str] = None,
        command: Optional[Sequence[str]] = None,
        grace_s: float = 1.0,
    ):
        """``plan``: the case plan (``plan.json`` content). ``ct``: the post-operative CT as stored
        (its RAS before fusion). ``mri`` / ``preop_ct``: what the CT is fused to (the pre-operative CT
        must already be registered to the MRI). ``transform_path``: a CT-to-MRI transform file that
        replaces the fusion. ``lead_model``: the implanted lead (a name of
        ``DBSSegmentationLogic.postop.leads.LEAD_MODELS``; the command's default when ``None``). ``sources``: what
        the result's ``plan``, ``ct``, ``mri`` and ``preop_ct`` entries should name instead of the scratch
        copies (e.g. ``{"plan": "plan.json", "ct": "/data/ct.nii.gz"}``).
        ``command`` replaces :func:`postop_command` (tests pass a stand-in)."""
        if not plan or not plan.get("trajectories"):
            raise DBSInputError("the plan has no trajectory: plan the case first")
        if ct is None:
            raise DBSInputError("select the post-operative CT first")
        if lead_model is not None and lead_model not in LEAD_MODELS:
            raise DBSInputError(f"unknown lead model '{lead_model}': use one of {', '.join(LEAD_MODELS)}")
        super().__init__(list(command) if command else postop_command(python_executable), grace_s)
        self.plan = plan
        self.ct = ct
        self.mri = mri
        self.preop_ct = preop_ct
        self.transform_path = None if transform_path is None else Path(transform_path)
        self.lead_model = lead_model
        self.sources = dict(sources or {})

    def write_inputs(self, scratch: Path) -> list[str]:
        # Uncompressed: a CT is large and the copy only lives until the job ends.
        plan_path = write_json_atomic(scratch / "plan.json", self.plan)
        arguments = ["--plan", str(plan_path), "--ct", str(write_volume(self.ct, scratch / "ct.nii", compress=False))]
        if self.mri is not None:
            arguments += ["--mri", str(write_volume(self.mri, scratch / "mri.nii", compress=False))]
        if self.preop_ct is not None:
            arguments += ["--preop-ct", str(write_volume(self.preop_ct, scratch / "preop_ct.nii", compress=False))]
        if self.transform_path is not None:
            arguments += ["--transform", str(self.transform_path)]
        if self.lead_model is not None:
            arguments += ["--lead-model", self.lead_model]
        return arguments + ["--out", str(self.out_dir)]

    @property
    def out_dir(self) -> Path:
        return self.scratch / "out"

    @property
    def postop_path(self) -> Path:
        return self.out_dir / "postop.json"

    def outputs(self) -> dict:
        """``postop.json`` of a succeeded run (raises as :meth:`require_success` otherwise)."""
        self.require_success()
        if not self.postop_path.is_file():
            raise RuntimeError(f"{self.name} ended without writing postop.json")
        postop = read_postop(self.postop_path)
        postop.update(self.sources)  # the scratch copies are gone once the job is cleaned up
        return postop


def read_postop(path) -> dict:
    """A ``postop.json`` (format ``dbs-postop/1``) as a dict; another format raises."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    check_postop(document)
    return document


def check_postop(postop: dict) -> None:
    """Refuse a post-op result this module cannot show (wrong format, missing keys)."""
    if not isinstance(postop, dict) or postop.get("format") != POSTOP_FORMAT:
        found = postop.get("format") if isinstance(postop, dict) else type(postop).__name__
        raise DBSInputError(f"expected a post-op result of format {POSTOP_FORMAT}, got {found!r}")
    missing = [key for key in ("fusion", "leads", "errors") if key not in postop]
    if missing:
        raise DBSInputError(f"the post-op result lacks {', '.join(missing)}")
    for lead in postop["leads"]:
        if lead.get("side") not in ("left", "right"):
            raise DBSInputError(f"a lead of the post-op result has side {lead.get('side')!r}, not left or right")
