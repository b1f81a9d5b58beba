"""The training loop: L1 + AdamW + warm-up/decay schedule + EMA, bf16 autocast on CUDA, gradient
clipping, periodic validation of the EMA weights, atomic checkpoints with an exact `--resume`, a stop
on a non-finite loss, and DDP when launched by torchrun.

Exactness: everything a step reads is restored from the checkpoint (weights, EMA, AdamW moments,
scheduler, RNG states) and the samples of iteration k are a pure function of (seed, k) through
`GlobalBatchStream` + `TrainPatches`, so on the CPU a killed-and-resumed run ends bit-identical to
an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

import suite
from suite.models import count_parameters, build_model
from suite.train import distributed
from suite.checkpoint import (
    checkpoint_name, copy_atomic, load_checkpoint, read_pointer, save_checkpoint, write_pointer,
)
from suite.train.rng import capture_rng, restore_rng
from suite.train.config import RecipeError, recipe_hash, resolved_model_config, resume_differences
from suite.train.monitor import Progress, Scalars, TrainLog
from suite.train.sampler import EpochKeyed, GlobalBatchStream
from suite.train.schedule import build_scheduler

# The upsampler's last conv maps to 3*s^2 channels: the only weights tied to the scale.
SCALE_DEPENDENT = ("to_pixels.",)


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient norm became NaN/Inf; the message names the iteration and the last checkpoint."""


def resolve_device(recipe: dict, world: distributed.World) -> tuple[torch.device, torch.dtype | None]:
    """run.device/run.dtype -> (device, autocast dtype or None for float32)."""
    requested = recipe["run"]["device"]
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RecipeError(f"run.device = {recipe['run']['device']!r} but CUDA is not available here")
        if requested == "cuda":
            requested = f"cuda:{world.local_rank}"
        elif world.distributed:
            raise RecipeError(f"run.device = {requested!r} names one GPU but torchrun started "
                              f"{world.size} processes; use run.device: cuda (one GPU per process)")
        index = int(requested.split(":")[1])
        if index >= torch.cuda.device_count():
            raise RecipeError(f"run.device = {requested!r} but only {torch.cuda.device_count()} GPU(s) exist")
    device = torch.device(requested)
    dtype = recipe["run"]["dtype"]
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    return device, (torch.bfloat16 if dtype == "bfloat16" else None)


def check_data(recipe: dict) -> None:
    """Data fields against the disk: folders exist and hold LR images for the model's scale."""
    data, scale = recipe["data"], recipe["model"]["scale"]
    for field, split in (("data.train", "train"), ("data.val", "valid")):
        root = data[field.split(".")[1]]
        if root is None:
            continue
        folder = Path(root)
        if not folder.is_dir():
            raise RecipeError(f"{field} = {root!r} is not a folder")
        for lr_root in (folder / "LR_bicubic", folder / f"DIV2K_{split}_LR_bicubic"):
            if not lr_root.is_dir() or (lr_root / f"X{scale}").is_dir():
                continue
            stored = sorted(p.name for p in lr_root.iterdir() if p.is_dir() and p.name.startswith("X"))
            if stored and not data["on_the_fly"]:
                raise RecipeError(
                    f"{field} = {root!r} stores LR images for {', '.join(stored)} ({lr_root}) but not "
                    f"X{scale} for model.scale = {scale}; add {lr_root / f'X{scale}'} or set "
                    f"data.on_the_fly: true to make x{scale} LR from the HR with MATLAB bicubic")


def _open_train_data(recipe: dict):
    from suite.data.datasets import TrainPatches

    data, run = recipe["data"], recipe["run"]
    try:
        return TrainPatches(data["train"], recipe["model"]["scale"], data["lr_patch"], run["seed"],
                            length=data["samples_per_epoch"], on_the_fly=data["on_the_fly"], split="train")
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"data.train = {data['train']!r}: {err}") from None


def _open_val_data(recipe: dict):
    from suite.data.datasets import open_paired

    try:
        return open_paired(recipe["data"]["val"], recipe["model"]["scale"], split="valid")
    except (ValueError, FileNotFoundError) as err:
        raise RecipeError(f"data.val = {recipe['data']['val']!r}: {err}") from None


def _init_weights(model: torch.nn.Module, path: str) -> list[str]:
    """Load `init_from`'s EMA weights except scale-dependent ones that differ in shape; -> skipped keys."""
    state = load_checkpoint(path)
    source = {k: v for k, v in state["model_config"].items() if k != "scale"}
    target = {k: v for k, v in model.config.items() if k != "scale"}
    differing = [f"{k}: {source.get(k)!r} in the checkpoint, {target.get(k)!r} in the recipe"
                 for k in sorted(set(source) | set(target)) if source.get(k) != target.get(k)]
    if differing:
        raise RecipeError(f"init_from = {path!r} is a different network: {'; '.join(differing)}")
    weights = state["ema"]
    own = model.state_dict()
    skipped = [k for k in weights if k.startswith(SCALE_DEPENDENT) and weights[k].shape != own[k].shape]
    model.load_state_dict({**weights, **{k: own[k] for k in skipped}})
    return skipped


def _seed_everything(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _validate(ema_model: torch.nn.Module, dataset, recipe: dict, device: torch.device) -> dict:
    from suite.evaluate import evaluate
    from suite.evaluate.checkpoint import ModelUpscaler

    model = ema_model.module
    was_training = model.training
    upscaler = ModelUpscaler(model, device)
    try:
        result = evaluate(upscaler, dataset, recipe["model"]["scale"], recipe["name"], device=str(device))
    finally:
        model.train(was_training)
    return {"psnr": result["psnr"], "ssim": result["ssim"]}


def train(recipe: dict, resume: bool = False) -> Path:
    """Run (or continue, with `resume`) the recipe; returns `out_dir/final.pt`."""
    world = distributed.world_from_env()
    device, amp_dtype = resolve_device(recipe, world)
    if recipe["run"]["threads"] is not None:
        torch.set_num_threads(recipe["run"]["threads"])
    data_cfg = recipe["data"]
    if data_cfg["batch_size"] % world.size:
        raise RecipeError(f"data.batch_size = {data_cfg['batch_size']} is not divisible by the "
                          f"{world.size} torchrun processes (it is the global batch)")
    check_data(recipe)

    out_dir = Path(recipe["out_dir"])
    ckpt_dir = out_dir / "checkpoints"
    final_path = out_dir / "final.pt"
    resume_from = read_pointer(ckpt_dir) if resume else None
    if not resume and (read_pointer(ckpt_dir) is not None or final_path.exists()):
        raise RecipeError(f"out_dir = {str(out_dir)!r} already holds a run ({ckpt_dir / 'last'} or {final_path}); "
                          f"pass --resume to continue it or choose another out_dir")
    checkpoint = load_checkpoint(resume_from) if resume_from is not None else None
    config_hash = recipe_hash(recipe)
    if checkpoint is not None:
        differences = resume_differences(checkpoint["config"], recipe)
        if differences:
            raise RecipeError(f"--resume: the recipe differs from the one {resume_from} was trained with: "
                              + "; ".join(differences))
    if recipe["init_from"] is not None and not Path(recipe["init_from"]).is_file():
        raise RecipeError(f"init_from = {recipe['init_from']!r} does not exist")
    train_data = _open_train_data(recipe)
    val_data = _open_val_data(recipe) if data_cfg["val"] is not None else None
    samples_per_epoch = len(train_data)
    if checkpoint is not None and checkpoint["sampler"]["samples_per_epoch"] != samples_per_epoch:
        raise RecipeError(f"--resume: data.train now gives {samples_per_epoch} samples per epoch, the "
                          f"checkpoint {resume_from} was trained with {checkpoint['sampler']['samples_per_epoch']}")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    distributed.init(world, device)
    try:
        return _run(recipe, world, device, amp_dtype, train_data, val_data, checkpoint, resume_from, config_hash)
    finally:
        distributed.shutdown()


def _run(recipe, world, device, amp_dtype, train_data, val_data, checkpoint, resume_from, config_hash) -> Path:
    data_cfg, run_cfg, sched_cfg = recipe["data"], recipe["run"], recipe["schedule"]
    out_dir = Path(recipe["out_dir"])
    ckpt_dir = out_dir / "checkpoints"
    total = sched_cfg["iterations"]

    _seed_everything(run_cfg["seed"])
    model = build_model(**resolved_model_config(recipe))
    skipped: list[str] = []
    if recipe["init_from"] is not None and checkpoint is None:
        skipped = _init_weights(model, recipe["init_from"])
    model.to(device).train()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe["ema"]["decay"]), use_buffers=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["optim"]["lr"],
                                  betas=tuple(recipe["optim"]["betas"]),
                                  weight_decay=recipe["optim"]["weight_decay"])
    scheduler = build_scheduler(optimizer, sched_cfg)

    start, elapsed_before, step_times, last_val = 0, 0.0, [], None
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        ema.module.load_state_dict(checkpoint["ema"])
        ema.n_averaged.fill_(checkpoint["ema_updates"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start = int(checkpoint["iteration"])
        elapsed_before = float(checkpoint["timing"]["elapsed_s"])
        step_times = checkpoint["timing"]["step_times_s"].tolist()
        last_val = checkpoint["validation"]
        rng_states = checkpoint["rng"]
        restore_rng(rng_states[world.rank] if world.rank < len(rng_states) else rng_states[0])
    trained = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if world.distributed else model

    stream = GlobalBatchStream(len(train_data), data_cfg["batch_size"], run_cfg["seed"],
                               world.rank, world.size, start=start)
    workers = data_cfg["num_workers"]
    loader = DataLoader(EpochKeyed(train_data), batch_sampler=stream, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator())  # own generator: the global RNG stays untouched

    main = world.is_main
    log = TrainLog(out_dir / "train_log.csv", resume_at=start if checkpoint is not None else None) if main else None
    scalars = Scalars(out_dir / "tb", resume_at=start if checkpoint is not None else None) if main else None
    progress = Progress(total, start, run_cfg["log_every"], recipe["name"], enabled=main)
    if checkpoint is not None:
        progress.note(f"{recipe['name']}: resuming from {resume_from} at iteration {start}")
    if skipped:
        progress.note(f"{recipe['name']}: init_from {recipe['init_from']}: kept the new model's "
                      f"{', '.join(skipped)} (scale-dependent)")
    n_params = count_parameters(model)
    last_good = str(resume_from) if resume_from is not None else None
    max_norm = recipe["optim"]["grad_clip"] if recipe["optim"]["grad_clip"] > 0 else math.inf
    val_every = run_cfg["val_every"] if val_data is not None else 0

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()

    def state(iteration: int, elapsed: float) -> dict:
        rng = distributed.gather_to_all(capture_rng())
        return {
            "iteration": iteration,
            "model": model.state_dict(),
            "ema": ema.module.state_dict(),
            "ema_updates": int(ema.n_averaged.item()),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng,
            "sampler": {**stream.position(iteration), "samples_per_epoch": len(train_data),
                        "global_batch": data_cfg["batch_size"], "seed": run_cfg["seed"]},
            "config": recipe,
            "config_hash": config_hash,
            "model_config": model.config,
            "timing": {"elapsed_s": elapsed, "step_times_s": torch.tensor(step_times, dtype=torch.float64)},
            "validation": last_val,
            "provenance": {"suite_version": suite.__version__, "torch": str(torch.__version__),
                           "device": str(device), "dtype": str(amp_dtype or torch.float32).replace("torch.", ""),
                           "world_size": world.size},
        }

    iteration = start
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
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            loss_value = float(distributed.mean_over_world(loss.detach()).item())
            iteration += 1
            if not (math.isfinite(loss_value) and math.isfinite(float(grad_norm))):
                what = f"loss {loss_value}" if not math.isfinite(loss_value) else f"gradient norm {float(grad_norm)}"
                raise NonFiniteLoss(
                    f"{recipe['name']}: non-finite {what} at iteration {iteration}; stopped without writing "
                    f"a checkpoint for it. Last good checkpoint: {last_good or 'none (no checkpoint yet)'}")
            lr_now = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            ema.update_parameters(model)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_time = time.perf_counter() - step_start
            step_times.append(step_time)

            val = None
            if val_every and (iteration % val_every == 0 or iteration == total):
                if main:
                    val = last_val = _validate(ema, val_data, recipe, device)
                    progress.note(f"{recipe['name']}: iteration {iteration}: validation (EMA) "
                                  f"PSNR {val['psnr']:.4f} dB, SSIM {val['ssim']:.4f}")
                distributed.barrier()
            if main:
                if iteration % run_cfg["log_every"] == 0 or iteration == total or val is not None:
                    log.write(iteration, loss_value, lr_now, step_time,
                              val["psnr"] if val else None, val["ssim"] if val else None)
                    scalars.add(iteration, train__loss=loss_value, train__lr=lr_now, train__step_time_s=step_time,
                                val__psnr=val["psnr"] if val else None, val__ssim=val["ssim"] if val else None)
                progress.update(iteration, loss_value, lr_now)
            if iteration % run_cfg["checkpoint_every"] == 0 or iteration == total:
                snapshot = state(iteration, elapsed_before + time.perf_counter() - loop_start)
                if main:
                    path = save_checkpoint(snapshot, ckpt_dir / checkpoint_name(iteration))
                    write_pointer(ckpt_dir, path)
                last_good = str(ckpt_dir / checkpoint_name(iteration))
                distributed.barrier()
    finally:
        progress.close()
        if main:
            log.close()
            scalars.close()
        del batches

    final_path = out_dir / "final.pt"
    if main:
        from suite.files import write_json_atomic

        last_path = ckpt_dir / checkpoint_name(total)
        final_state = load_checkpoint(last_path)
        times = final_state["timing"]["step_times_s"].tolist()
        validation = final_state["validation"]
        summary = {
            "name": recipe["name"],
            "iterations": total,
            "median_step_time_s": statistics.median(times) if times else None,
            "mean_step_time_s": statistics.fmean(times) if times else None,
            "wall_time_s": final_state["timing"]["elapsed_s"],
            "params": n_params,
            "device": str(device),
            "dtype": final_state["provenance"]["dtype"],
            "autocast": amp_dtype is not None,
            "torch_version": str(torch.__version__),
            "suite_version": suite.__version__,
            "seed": run_cfg["seed"],
            "threads": torch.get_num_threads(),
            "world_size": world.size,
            "global_batch": data_cfg["batch_size"],
            "lr_patch": data_cfg["lr_patch"],
            "model": model.config,
            "val_psnr": validation["psnr"] if validation else None,
            "val_ssim": validation["ssim"] if validation else None,
            "config_hash": config_hash,
        }
        write_json_atomic(out_dir / "summary.json", summary)
        copy_atomic(last_path, final_path)  # written last: the workflow's target
        print(f"{recipe['name']}: {total} iterations, median step {summary['median_step_time_s']:.4f} s, "
              f"wall {summary['wall_time_s']:.1f} s -> {final_path}", file=sys.stderr)
    distributed.barrier()
    return final_path
