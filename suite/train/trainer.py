"""The training loop: L1 + AdamW + warm-up/decay schedule + EMA, a precision policy (fp32, bf16
autocast, or the official bf16-inside-attention), gradient clipping, periodic validation of the EMA
weights, atomic checkpoints with an exact resume, a stop on a non-finite loss, and DDP when launched
by torchrun.

`train` reads top to bottom: prepare (device, data, run folder), `build` (seeded network, EMA,
optimiser, schedule), `restore` (a checkpoint's states), `loop` (the steps), `finish` (summary and
final.pt). Exactness: everything a step reads is restored from the checkpoint (weights, EMA, AdamW
moments, scheduler, RNG states) and the samples of iteration k are a pure function of (seed, k)
through `GlobalBatchStream` + `TrainPatches`, so on the CPU a killed-and-resumed run ends
bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from suite.checkpoint import checkpoint_name, copy_atomic, load_checkpoint, save_checkpoint
from suite.env import resolve_device, run_record
from suite.files import not_found_message, write_json_atomic
from suite.models import apply_precision, build_model, count_parameters
from suite.models.presets import resolve_saved_config
from suite.train import SUMMARY_FIELDS, distributed
from suite.train.config import RecipeError, recipe_hash, resolved_model_config
from suite.train.monitor import Progress, Scalars, TrainLog
from suite.train.rng import capture_rng, restore_rng
from suite.train.rundir import RunLock, finished_run, restore_point
from suite.train.sampler import EpochKeyed, GlobalBatchStream
from suite.train.schedule import build_scheduler


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became NaN/Inf; the message names the iteration and the last checkpoint."""


def run_device_and_precision(recipe: dict, world: distributed.World) -> tuple[torch.device, str]:
    """run.device/run.precision -> (device, precision, `auto` resolved)."""
    requested = resolve_device(recipe["run"]["device"], "run.device")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecipeError(f"run.device = {recipe['run']['device']!r} but CUDA is not available here")
        if requested == "cuda":
            requested = f"cuda:{world.local_rank}"
        elif world.distributed:
            raise RecipeError(
                f"run.device = {requested!r} names one GPU but torchrun started "
                f"{world.size} processes; use run.device: cuda (one GPU per process)"
            )
        index = int(requested.split(":")[1])
        if index >= torch.cuda.device_count():
            raise RecipeError(f"run.device = {requested!r} but only {torch.cuda.device_count()} GPU(s) exist")
    device = torch.device(requested)
    precision = recipe["run"]["precision"]
    if precision == "auto":
        precision = "autocast-bf16" if device.type == "cuda" else "fp32"
    return device, precision


def check_data(recipe: dict) -> None:
    """Data fields against the disk: folders exist and hold LR images for the model's scale."""
    data, scale = recipe["data"], recipe["model"]["scale"]
    for name, split in (("data.train", "train"), ("data.val", "valid")):
        root = data[name.split(".")[1]]
        if root is None:
            continue
        folder = Path(root)
        if not folder.is_dir():
            raise RecipeError(not_found_message(name, root, "a folder"))
        for lr_root in (folder / "LR_bicubic", folder / f"DIV2K_{split}_LR_bicubic"):
            if not lr_root.is_dir() or (lr_root / f"X{scale}").is_dir():
                continue
            stored = sorted(p.name for p in lr_root.iterdir() if p.is_dir() and p.name.startswith("X"))
            if stored and not data["on_the_fly"]:
                raise RecipeError(
                    f"{name} = {root!r} stores LR images for {', '.join(stored)} ({lr_root}) but not "
                    f"X{scale} for model.scale = {scale}; add {lr_root / f'X{scale}'} or set "
                    f"data.on_the_fly: true to make x{scale} LR from the HR with MATLAB bicubic"
                )


def _open_train_data(recipe: dict):
    from suite.data.datasets import TrainPatches

    data, run = recipe["data"], recipe["run"]
    subimages = data["subimages"]
    try:
        return TrainPatches(
            data["train"],
            recipe["model"]["scale"],
            data["lr_patch"],
            run["seed"],
            length=data["samples_per_epoch"],
            on_the_fly=data["on_the_fly"],
            split="train",
            subimages=None if subimages is None else (subimages["size"], subimages["step"]),
        )
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"data.train = {data['train']!r}: {err}") from None


def _open_val_data(recipe: dict):
    from suite.data.datasets import open_paired

    try:
        return open_paired(recipe["data"]["val"], recipe["model"]["scale"], split="valid")
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"data.val = {recipe['data']['val']!r}: {err}") from None


def reinterpolate_subpixel(weight: torch.Tensor, old_scale: int, new_scale: int) -> torch.Tensor:
    """A tensor feeding PixelShuffle(old_scale), (C*s^2, ...) in (c, dy, dx) channel order, resized
    bilinearly on its (s, s) sub-pixel grid to PixelShuffle(new_scale) (official fine-tuning, SPEC 5)."""
    channels = weight.shape[0] // (old_scale * old_scale)
    rest = weight.shape[1:]
    grid = weight.reshape(channels, old_scale, old_scale, -1).permute(0, 3, 1, 2)  # (C, R, s, s)
    flat = grid.reshape(-1, 1, old_scale, old_scale).double()
    resized = F.interpolate(flat, size=(new_scale, new_scale), mode="bilinear", align_corners=False)
    resized = resized.to(weight.dtype).reshape(channels, -1, new_scale, new_scale).permute(0, 2, 3, 1)
    return resized.reshape(channels * new_scale * new_scale, *rest).contiguous()


def _init_weights(model: torch.nn.Module, path: str) -> list[str]:
    """Load `init_from`'s EMA weights; sub-pixel tensors of another scale are re-interpolated -> their keys."""
    state = load_checkpoint(path)
    old_scale, new_scale = int(state["model_config"]["scale"]), int(model.config["scale"])
    source = {k: v for k, v in resolve_saved_config(state["model_config"]).items() if k != "scale"}
    target = {k: v for k, v in model.config.items() if k != "scale"}
    differing = [
        f"{k}: {source.get(k)!r} in the checkpoint, {target.get(k)!r} in the recipe"
        for k in sorted(set(source) | set(target))
        if source.get(k) != target.get(k)
    ]
    if differing:
        raise RecipeError(f"init_from = {path!r} is a different network: {'; '.join(differing)}")
    weights = dict(state["ema"] if "ema" in state else state["model"])
    own = model.state_dict()
    resized = []
    for key, value in weights.items():
        if key not in own or value.shape == own[key].shape:
            continue
        fits = (
            value.shape[1:] == own[key].shape[1:]
            and value.shape[0] % (old_scale**2) == 0
            and value.shape[0] // old_scale**2 * new_scale**2 == own[key].shape[0]
        )
        if not fits:
            raise RecipeError(
                f"init_from = {path!r}: {key} has shape {tuple(value.shape)}, the x{new_scale} "
                f"network needs {tuple(own[key].shape)}"
            )
        weights[key] = reinterpolate_subpixel(value, old_scale, new_scale)
        resized.append(key)
    model.load_state_dict(weights)
    return resized


def _seed_everything(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _validate(ema_model: torch.nn.Module, dataset, recipe: dict, device: torch.device, precision: str) -> dict:
    from suite.evaluate import evaluate
    from suite.evaluate.inference import ModelUpscaler

    model = ema_model.module
    was_training = model.training
    upscaler = ModelUpscaler(model, device, precision=precision)  # the EMA weights run as the model trains
    try:
        result = evaluate(upscaler, dataset, recipe["model"]["scale"], recipe["name"], device=str(device))
    finally:
        model.train(was_training)
    return {"psnr": result["psnr"], "ssim": result["ssim"]}


@dataclass
class Run:
    """Everything one training run holds: what `build` makes, `restore` fills and `loop` advances."""

    recipe: dict
    world: distributed.World
    device: torch.device
    precision: str
    train_data: object
    val_data: object
    model: torch.nn.Module
    ema: AveragedModel
    optimizer: torch.optim.Optimizer
    scheduler: object
    config_hash: str
    record: dict
    start: int = 0
    elapsed_before: float = 0.0
    step_times: list = field(default_factory=list)
    last_val: dict | None = None
    resumed_from: Path | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.recipe["out_dir"])

    @property
    def ckpt_dir(self) -> Path:
        return self.out_dir / "checkpoints"


def train(recipe: dict, mode: str = "new") -> Path:
    """Run the recipe in one of suite.train.rundir.MODES (new, resume, resume-or-restart) -> out_dir/final.pt."""
    world = distributed.world_from_env()
    device, precision = run_device_and_precision(recipe, world)
    if recipe["run"]["threads"] is not None:
        torch.set_num_threads(recipe["run"]["threads"])
    if recipe["data"]["batch_size"] % world.size:
        raise RecipeError(
            f"data.batch_size = {recipe['data']['batch_size']} is not divisible by the "
            f"{world.size} torchrun processes (it is the global batch)"
        )
    check_data(recipe)
    if recipe["init_from"] is not None and not Path(recipe["init_from"]).is_file():
        raise RecipeError(f"init_from = {recipe['init_from']!r} does not exist")
    train_data = _open_train_data(recipe)
    val_data = _open_val_data(recipe) if recipe["data"]["val"] is not None else None
    if device.type == "cuda":
        torch.cuda.set_device(device)

    distributed.init(world, device)
    try:
        with RunLock(recipe["out_dir"]) if world.is_main else contextlib.nullcontext():
            resume_from, checkpoint, finished = None, None, None
            if world.is_main:
                finished = finished_run(recipe, mode, len(train_data), _note)
                if finished is None:
                    resume_from, checkpoint = restore_point(recipe, mode, len(train_data), _note)
                    _decode_everything(recipe, train_data, val_data)
            finished, resume_from = distributed.gather_to_all((finished, resume_from))[0]  # rank 0 decided
            if finished is not None:
                return finished
            if checkpoint is None and resume_from is not None:
                checkpoint = load_checkpoint(resume_from)
            run = build(recipe, world, device, precision, train_data, val_data, init=checkpoint is None)
            if checkpoint is not None:
                restore(run, checkpoint, resume_from)
            loop(run)
            return finish(run)
    finally:
        distributed.shutdown()


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _decode_everything(recipe: dict, train_data, val_data) -> None:
    """Read every training and validation image now: a corrupt file found hours into training is a lost run."""
    from suite.data import decode_all

    for field_name, dataset in (("data.train", train_data), ("data.val", val_data)):
        if dataset is None:
            continue
        try:
            decode_all(dataset)
        except (ValueError, OSError) as err:
            raise RecipeError(f"{field_name} = {recipe['data'][field_name.split('.')[1]]!r}: {err}") from None


def parameter_groups(model, optim: dict) -> list[dict]:
    """AdamW's groups: every weight at optim.lr, the positional bias's at lr * positional_lr_scale (one group
    when the scale is 1, so the optimizer state has the layout of runs that predate the option)."""
    if optim["positional_lr_scale"] == 1.0:
        return [{"params": list(model.parameters())}]
    positional = {id(param) for param in model.positional_parameters()}
    return [
        {"params": [param for param in model.parameters() if id(param) not in positional]},
        {"params": model.positional_parameters(), "lr": optim["lr"] * optim["positional_lr_scale"]},
    ]


def build(recipe: dict, world, device, precision: str, train_data, val_data, init: bool) -> Run:
    """Seed every RNG, then the network (init_from's weights on a fresh run), EMA, AdamW, schedule."""
    _seed_everything(recipe["run"]["seed"])
    model = build_model(**resolved_model_config(recipe))
    resized: list[str] = []
    if recipe["init_from"] is not None and init:
        resized = _init_weights(model, recipe["init_from"])
    model.to(device).train()
    apply_precision(model, precision)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe["ema"]["decay"]), use_buffers=False)
    optimizer = torch.optim.AdamW(
        parameter_groups(model, recipe["optim"]),
        lr=recipe["optim"]["lr"],
        betas=tuple(recipe["optim"]["betas"]),
        weight_decay=recipe["optim"]["weight_decay"],
    )
    scheduler = build_scheduler(optimizer, recipe["schedule"])
    record = run_record(device, precision=precision, compile=recipe["run"]["compile"], world_size=world.size)
    if resized and world.is_main:
        print(
            f"{recipe['name']}: init_from {recipe['init_from']}: re-interpolated {', '.join(resized)} "
            f"to x{recipe['model']['scale']}",
            file=sys.stderr,
        )
    return Run(
        recipe,
        world,
        device,
        precision,
        train_data,
        val_data,
        model,
        ema,
        optimizer,
        scheduler,
        recipe_hash(recipe),
        record,
    )


def restore(run: Run, checkpoint: dict, path: Path) -> None:
    """Every state a step reads, from `checkpoint`: weights, EMA, AdamW, schedule, timing, RNGs."""
    run.model.load_state_dict(checkpoint["model"])
    run.ema.module.load_state_dict(checkpoint["ema"])
    run.ema.n_averaged.fill_(checkpoint["ema_updates"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    run.start = int(checkpoint["iteration"])
    run.elapsed_before = float(checkpoint["timing"]["elapsed_s"])
    run.step_times = checkpoint["timing"]["step_times_s"].tolist()
    run.last_val = checkpoint["validation"]
    run.resumed_from = path
    saved_threads = checkpoint["provenance"].get("threads")
    if saved_threads is not None and saved_threads != torch.get_num_threads() and run.world.is_main:
        print(
            f"{run.recipe['name']}: warning: {path} was trained with {saved_threads} CPU threads, this process "
            f"has {torch.get_num_threads()}: the resumed run will not be bit-identical to an uninterrupted one",
            file=sys.stderr,
        )
    rng_states = checkpoint["rng"]
    restore_rng(rng_states[run.world.rank] if run.world.rank < len(rng_states) else rng_states[0])


def _state(run: Run, stream: GlobalBatchStream, iteration: int, elapsed: float) -> dict:
    """The checkpoint of `run` after `iteration` steps."""
    rng = distributed.gather_to_all(capture_rng())
    data_cfg = run.recipe["data"]
    return {
        "iteration": iteration,
        "model": run.model.state_dict(),
        "ema": run.ema.module.state_dict(),
        "ema_updates": int(run.ema.n_averaged.item()),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng,
        "sampler": {
            **stream.position(iteration),
            "samples_per_epoch": len(run.train_data),
            "global_batch": data_cfg["batch_size"],
            "seed": run.recipe["run"]["seed"],
        },
        "config": run.recipe,
        "config_hash": run.config_hash,
        "model_config": run.model.config,
        "timing": {"elapsed_s": elapsed, "step_times_s": torch.tensor(run.step_times, dtype=torch.float64)},
        "validation": run.last_val,
        "provenance": {**run.record, "threads": torch.get_num_threads()},
    }


def loop(run: Run) -> None:
    """The training steps from `run.start` to schedule.iterations, with logging, validation, checkpoints."""
    recipe, world, device, model = run.recipe, run.world, run.device, run.model
    data_cfg, run_cfg = recipe["data"], recipe["run"]
    total = recipe["schedule"]["iterations"]
    resumed = run.resumed_from is not None
    trained = (
        torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world.distributed
        else model
    )
    if run_cfg["compile"]:
        trained = torch.compile(trained)
    stream = GlobalBatchStream(
        len(run.train_data), data_cfg["batch_size"], run_cfg["seed"], world.rank, world.size, start=run.start
    )
    workers = data_cfg["num_workers"]
    loader = DataLoader(
        EpochKeyed(run.train_data),
        batch_sampler=stream,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator(),
    )  # own generator: the global RNG stays untouched

    main = world.is_main
    log = TrainLog(run.out_dir / "train_log.csv", resume_at=run.start if resumed else None) if main else None
    scalars = Scalars(run.out_dir / "tb", resume_at=run.start if resumed else None) if main else None
    progress = Progress(total, run.start, run_cfg["log_every"], recipe["name"], enabled=main)
    if resumed:
        progress.note(f"{recipe['name']}: resuming from {run.resumed_from} at iteration {run.start}")
    last_good = str(run.resumed_from) if resumed else None
    max_norm = recipe["optim"]["grad_clip"] if recipe["optim"]["grad_clip"] > 0 else math.inf
    val_every = run_cfg["val_every"] if run.val_data is not None else 0
    amp_dtype = torch.bfloat16 if run.precision == "autocast-bf16" else None

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()

    iteration = run.start
    loop_start = time.perf_counter()
    batches = iter(loader)
    try:
        while iteration < total:
            lr_patch, hr_patch = next(batches)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_start = time.perf_counter()
            lr_patch = lr_patch.to(device, non_blocking=True)
            hr_patch = hr_patch.to(device, non_blocking=True)
            with autocast():
                sr = trained(lr_patch)
            loss = F.l1_loss(sr.float(), hr_patch)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            loss_value = float(distributed.mean_over_world(loss.detach()).item())
            iteration += 1
            if not (math.isfinite(loss_value) and math.isfinite(float(grad_norm))):
                what = f"loss {loss_value}" if not math.isfinite(loss_value) else f"gradient norm {float(grad_norm)}"
                raise NonFiniteLoss(
                    f"{recipe['name']}: non-finite {what} at iteration {iteration}; stopped without writing "
                    f"a checkpoint for it. Last good checkpoint: {last_good or 'none (no checkpoint yet)'}"
                )
            lr_now = run.optimizer.param_groups[0]["lr"]
            run.optimizer.step()
            run.scheduler.step()
            run.ema.update_parameters(model)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_time = time.perf_counter() - step_start
            run.step_times.append(step_time)

            val = None
            if val_every and (iteration % val_every == 0 or iteration == total):
                if main:
                    val = run.last_val = _validate(run.ema, run.val_data, recipe, device, run.precision)
                    progress.note(
                        f"{recipe['name']}: iteration {iteration}: validation (EMA) "
                        f"PSNR {val['psnr']:.4f} dB, SSIM {val['ssim']:.4f}"
                    )
                distributed.barrier()
            if main:
                if iteration % run_cfg["log_every"] == 0 or iteration == total or val is not None:
                    log.write(
                        iteration,
                        loss_value,
                        lr_now,
                        step_time,
                        val["psnr"] if val else None,
                        val["ssim"] if val else None,
                    )
                    scalars.add(
                        iteration,
                        train__loss=loss_value,
                        train__lr=lr_now,
                        train__step_time_s=step_time,
                        val__psnr=val["psnr"] if val else None,
                        val__ssim=val["ssim"] if val else None,
                    )
                progress.update(iteration, loss_value, lr_now)
            if iteration % run_cfg["checkpoint_every"] == 0 or iteration == total:
                snapshot = _state(run, stream, iteration, run.elapsed_before + time.perf_counter() - loop_start)
                if main:
                    save_checkpoint(snapshot, run.ckpt_dir / checkpoint_name(iteration))
                last_good = str(run.ckpt_dir / checkpoint_name(iteration))
                distributed.barrier()
    finally:
        progress.close()
        if main:
            log.close()
            scalars.close()
        del batches


def finish(run: Run) -> Path:
    """summary.json (SUMMARY_FIELDS) from the last checkpoint, then final.pt, the workflow's target."""
    recipe = run.recipe
    total = recipe["schedule"]["iterations"]
    final_path = run.out_dir / "final.pt"
    if run.world.is_main:
        last_path = run.ckpt_dir / checkpoint_name(total)
        final_state = load_checkpoint(last_path)
        times = final_state["timing"]["step_times_s"].tolist()
        validation = final_state["validation"]
        summary = {
            "name": recipe["name"],
            "iterations": total,
            "median_step_time_s": statistics.median(times) if times else None,
            "mean_step_time_s": statistics.fmean(times) if times else None,
            "wall_time_s": final_state["timing"]["elapsed_s"],
            "params": count_parameters(run.model),
            "device": str(run.device),
            "precision": run.precision,
            "compile": recipe["run"]["compile"],
            "seed": recipe["run"]["seed"],
            "threads": torch.get_num_threads(),
            "world_size": run.world.size,
            "global_batch": recipe["data"]["batch_size"],
            "lr_patch": recipe["data"]["lr_patch"],
            "model": run.model.config,
            "val_psnr": validation["psnr"] if validation else None,
            "val_ssim": validation["ssim"] if validation else None,
            "config_hash": run.config_hash,
            "provenance": run.record,
        }
        assert tuple(summary) == SUMMARY_FIELDS
        write_json_atomic(run.out_dir / "summary.json", summary)
        copy_atomic(last_path, final_path)  # written last: the workflow's target
        print(
            f"{recipe['name']}: {total} iterations, median step {summary['median_step_time_s']:.4f} s, "
            f"wall {summary['wall_time_s']:.1f} s -> {final_path}",
            file=sys.stderr,
        )
    distributed.barrier()
    return final_path
