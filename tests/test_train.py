"""`vpr-embedded train` on a small route the test writes: batches, validation, the kept
checkpoint, and a resume that gives the same weights as an uninterrupted run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpr_embedded.data.places import load_places
from vpr_embedded.models.checkpoints import load_checkpoint
from vpr_embedded.train import PlaceBatches, TrainJob, run_train


@pytest.fixture(scope="module")
def route(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 frames, two conditions (the second darker and noisier), textures per place."""
    root = tmp_path_factory.mktemp("route")
    rng = np.random.default_rng(0)
    for j in range(100):
        base = rng.integers(0, 255, (16, 32)).astype(np.float32)
        for cond, (gain, noise) in {"day": (1.0, 0.0), "night": (0.5, 20.0)}.items():
            img = np.clip(base * gain + rng.normal(0, noise + 1e-6, base.shape), 0, 255)
            (root / cond).mkdir(exist_ok=True)
            Image.fromarray(img.astype(np.uint8)).save(root / cond / f"{j:04d}.png")
    return root


def _job(route: Path, out: Path, epochs: int) -> TrainJob:
    return TrainJob(
        model="efficientnet_lite0-gem",
        data=str(route),
        out=out,
        input_size=(32, 64),
        epochs=epochs,
        places_per_batch=8,
        images_per_place=2,
        progress=False,
    )


def test_batches_hold_p_places_of_k_images_and_no_neighbours(route: Path) -> None:
    places = load_places(route, split="train", frames_per_place=2)
    sampler = PlaceBatches(places, p=8, k=4, gap=2, seed=0)
    batches = sampler.epoch()
    assert len(batches) == len(sampler) == 3
    seen: set[int] = set()
    for b in batches:
        labels = places.labels[b]
        assert len(b) == 32
        ids, counts = np.unique(labels, return_counts=True)
        assert len(ids) == 8 and set(counts) == {4}
        assert not seen & set(ids)  # a place at most once per epoch
        seen |= set(ids)
        gaps = np.diff(np.sort(places.order[ids]))
        assert gaps.min() > 2


def test_training_validates_keeps_the_best_and_resumes_exactly(route: Path, tmp_path: Path) -> None:
    straight = run_train(_job(route, tmp_path / "straight", 2))
    assert [h.epoch for h in straight.history] == [1, 2]
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert [set(h["recall"]) for h in history] == [{"R@1", "R@5", "R@10"}] * 2
    best = max(straight.history, key=lambda h: (h.recall["R@1"], h.epoch))
    assert straight.best_epoch == best.epoch
    model = load_checkpoint(straight.best)
    assert model.config.input_size == (32, 64)

    # Stopped after one epoch, then the same command again: the same weights as the
    # straight run.
    first = run_train(replace(_job(route, tmp_path / "resumed", 2), stop_after=1))
    assert first.resumed_from == 0
    assert [h.epoch for h in first.history] == [1]
    resumed = run_train(_job(route, tmp_path / "resumed", 2))
    assert resumed.resumed_from == 1
    assert [h.epoch for h in resumed.history] == [1, 2]
    a = load_checkpoint(tmp_path / "straight" / "last.pt").state_dict()
    b = load_checkpoint(tmp_path / "resumed" / "last.pt").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.history[1].loss == pytest.approx(straight.history[1].loss)

    # A finished run asked again trains nothing and reports what it has.
    again = run_train(_job(route, tmp_path / "resumed", 2))
    assert again.resumed_from == 2 and again.best_epoch == resumed.best_epoch
    with pytest.raises(ValueError, match="other settings"):
        run_train(replace(_job(route, tmp_path / "resumed", 3), lr=1e-2))


def test_training_on_the_test_segment_is_possible_only_by_asking(route: Path) -> None:
    job = _job(route, Path("unused"), 1)
    assert job.split == "train" and job.val_split == "val"


def test_too_few_places_for_a_batch_is_one_clear_error(route: Path, tmp_path: Path) -> None:
    job = replace(_job(route, tmp_path / "few", 1), places_per_batch=64)
    with pytest.raises(ValueError, match="fewer than the 64 a batch needs"):
        run_train(job)
