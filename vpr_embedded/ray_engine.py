"""Descriptor extraction on a Ray cluster: the `--engine ray` of build-map and append.

Ray Data holds the image list as rows (index, path); ``map_batches`` runs the model in a
fixed pool of actors, each loading the model once (``cpus_per_worker`` extraction threads,
``gpus_per_worker`` GPUs), and the driver collects the descriptors as batches finish and
puts them back in input order by index. Each actor embeds image by image with the same
code as the local engine (``DescriptorModel.embed_file``), so an int8 bundle gives the same
bits either way. The map itself is written on the driver, as one file, by the usual
atomic writer: nothing is written before every image is done.

Faults: an actor that dies (a crashed worker, a lost node) is restarted by Ray and its
batch is run again (Ray Data's actor pools default to ``max_restarts=-1`` and
``max_task_retries=-1``). An image that cannot be read is an error for that image, carried
back with its path; the caller reports it and leaves the image out, never silently.

Where the work runs, it needs what the driver has: the package installed (``pip install
vpr-embedded[scale]``) and the model and the images at the same paths (a shared file
system on a real cluster; see docs/scale.md). Paths are made absolute on the driver.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from vpr_embedded.extras import require
from vpr_embedded.progress import bar

if TYPE_CHECKING:
    from vpr_embedded.localize import Extracted

log = logging.getLogger(__name__)

# Test hook (tests/test_ray_engine.py): the path of a marker file; the first actor to
# create it dies (os._exit) in the middle of its batch, once per build.
KILL_ONE_WORKER_ENV = "VPR_RAY_KILL_ONE_WORKER"


class RayBuildError(ValueError):
    """The cluster could not run the build: a worker cannot load the model or read the
    package, say. Something the user fixes (paths and installs on the nodes), so a
    ValueError, which the CLI reports in one line; the message says what Ray reported."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` None starts a local cluster (``ray.init()``) unless
    RAY_ADDRESS is set; ``workers`` None uses every CPU of the cluster."""

    address: str | None = None
    workers: int | None = None
    batch_size: int = 32
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


class _Embedder:
    """One Ray actor: loads the model once, embeds batches of (index, path) rows."""

    def __init__(self, model: str, threads: int, gpus: float, die_once: str | None) -> None:
        import torch

        from vpr_embedded.localize import open_model

        self.extractor = open_model(model, threads=threads)
        eager = self.extractor._eager
        if gpus > 0 and eager is not None and torch.cuda.is_available():
            eager.cuda()  # Ray set CUDA_VISIBLE_DEVICES to this actor's GPU(s)
        self.die_once = die_once

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        from vpr_embedded.data.images import ImageReadError

        n = len(batch["index"])
        out = np.zeros((n, self.extractor.descriptor_dim), np.float32)
        errors = np.full(n, "", dtype=object)
        for i, path in enumerate(batch["path"]):
            if self.die_once and i == n // 2 and _claim(self.die_once):
                os._exit(1)  # the test hook: a worker crash mid-batch
            try:
                out[i] = self.extractor.embed_file(str(path))
            except ImageReadError as exc:
                errors[i] = str(exc)
        return {"index": batch["index"], "descriptor": out, "error": errors}


def _claim(marker: str) -> bool:
    """True for the one caller that creates ``marker``."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _start(options: RayOptions) -> None:
    """Connects to the cluster (or starts a local one), once per process."""
    require("scale", "--engine ray")
    import ray

    if not ray.is_initialized():
        # The driver's C++ core worker warns at error level that an actor with restarts
        # has its constructor arguments in the object store (ray#53727): true of every
        # Ray Data actor pool, and harmless here (a few short strings). Override with
        # RAY_BACKEND_LOG_LEVEL to see the core worker's log.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        address = options.address or os.environ.get("RAY_ADDRESS")
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )


def extract_on_ray(
    model: str, paths: Sequence[Path], options: RayOptions, desc: str = "extracting"
) -> Extracted:
    """Descriptors of ``paths`` by ``model`` (a bundle folder, checkpoint, zoo or registry
    name), computed on a Ray cluster; progress (images, per second, time left) on the
    driver."""
    if options.batch_size < 1 or options.cpus_per_worker <= 0 or options.gpus_per_worker < 0:
        raise ValueError("batch size and CPUs per worker must be positive, GPUs >= 0")
    from vpr_embedded.localize import Extracted

    _start(options)
    import ray
    import ray.data

    # Ray Data's notices (its execution plan, "execution finished", progress bars off) are
    # not the user's business; set after the import, which configures Ray Data's logging.
    logging.getLogger("ray.data").setLevel(logging.ERROR)

    spec = str(Path(model).resolve()) if Path(model).exists() else model
    rows = [{"index": i, "path": str(Path(p).resolve())} for i, p in enumerate(paths)]
    cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
    workers = options.workers or max(1, int(cpus // options.cpus_per_worker))
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False  # the driver's own bar below
    blocks = max(1, math.ceil(len(rows) / options.batch_size))
    ds = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _Embedder,
        fn_constructor_kwargs={
            "model": spec,
            "threads": max(1, round(options.cpus_per_worker)),
            "gpus": options.gpus_per_worker,
            "die_once": os.environ.get(KILL_ONE_WORKER_ENV),
        },
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None,
    )
    log.info(
        "ray: %d workers of %s CPUs for %d images", workers, options.cpus_per_worker, len(rows)
    )
    found: dict[int, NDArray[np.float32]] = {}
    bad: dict[int, str] = {}
    with bar(len(rows), desc, "img") as progress:
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for index, descriptor, error in zip(
                    batch["index"], batch["descriptor"], batch["error"], strict=True
                ):
                    if error:
                        bad[int(index)] = str(error)
                    else:
                        found[int(index)] = descriptor
                progress.update(len(batch["index"]))
        except ray.exceptions.RayError as exc:  # e.g. a worker that cannot load the model
            cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RayBuildError(
                f"the Ray build failed ({type(exc).__name__}): {cause}; check that every node "
                "has the package, the model and the images at the driver's paths"
            ) from exc
    missing = set(range(len(rows))) - found.keys() - bad.keys()
    if missing:  # Ray lost rows: never write a map without them
        raise RuntimeError(f"the Ray build lost {len(missing)} images, e.g. {min(missing)}")
    good = sorted(found)
    dim = next(iter(found.values())).shape[0] if found else 0
    descriptors = (
        np.stack([found[i] for i in good]).astype(np.float32, copy=False)
        if found
        else np.zeros((0, dim), np.float32)
    )
    return Extracted(descriptors, good, [(Path(paths[i]), bad[i]) for i in sorted(bad)])
