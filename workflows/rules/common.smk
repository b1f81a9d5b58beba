# Helpers shared by the .smk files: names and paths derived from the validated config, the checks
# JSON schema cannot express (one field naming a key of another), and the command-line fragments
# the rules pass to `suite`. No rules here.

import os
import re
import shlex

import yaml
from snakemake.exceptions import WorkflowError

RESULTS = f"results/{config['name']}"
LOGS = f"logs/{config['name']}"
DATA_ROOT = config["data_root"].rstrip("/")
ENV = "../envs/suite.yaml"  # relative to the rule files

SCALES = config["scales"]
PRESETS = config["train"]["presets"]
BIASES = config["train"]["biases"]
EVAL_DATASETS = config["eval"]["datasets"]
CROP = config["report"]["crop"]
MODELS = [f"{preset}-{bias}" for preset in PRESETS for bias in BIASES]  # "<preset>-<bias>", e.g. "tiny-rib"


def _fail(field: str, message: str) -> None:
    raise WorkflowError(f"invalid config: {field}: {message}")


def check_config() -> None:
    """Cross-field checks, before any job: every dataset a step names exists, the crop is evaluated."""
    known = sorted(config["datasets"])
    named = {
        "train.dataset": [config["train"]["dataset"]],
        "train.val_dataset": [config["train"]["val_dataset"]],
        "eval.datasets": EVAL_DATASETS,
        "report.crop.dataset": [CROP["dataset"]],
    }
    for field, names in named.items():
        for name in names:
            if name not in config["datasets"]:
                _fail(field, f"{name!r} is not a key of datasets (have {', '.join(known)})")
    if CROP["dataset"] not in EVAL_DATASETS:
        _fail("report.crop.dataset", f"{CROP['dataset']!r} is not one of eval.datasets {EVAL_DATASETS}")
    if CROP["scale"] not in SCALES:
        _fail("report.crop.scale", f"{CROP['scale']} is not one of scales {SCALES}")
    source = config["train"]["finetune_from"]
    if source is not None and source not in SCALES:
        _fail("train.finetune_from", f"{source} is not one of scales {SCALES}")


check_config()


wildcard_constraints:
    model="|".join(re.escape(model) for model in MODELS),
    dataset="|".join(re.escape(name) for name in config["datasets"]),
    scale=r"\d+",


def dataset_dir(name: str) -> str:
    """Folder of dataset `name` (a key of config["datasets"])."""
    return f"{DATA_ROOT}/{config['datasets'][name]['path']}"


def dataset_ready(name: str) -> str:
    """The input that guarantees dataset `name` is in place: the flag of the step that builds or
    fetches it, or for a dataset used as found, its folder itself."""
    entry = config["datasets"][name]
    if config["data_source"] == "mini":
        return f"{DATA_ROOT}/.ready/mini.done"
    if config["data_source"] == "download" and entry.get("fetch"):
        return f"{DATA_ROOT}/.ready/fetch-{entry['fetch']}.done"
    return dataset_dir(name)


def fetch_url_option(archive: str) -> str:
    """`--url URL` when a dataset fetched from `archive` names a mirror, else nothing."""
    urls = {entry["url"] for entry in config["datasets"].values()
            if entry.get("fetch") == archive and entry.get("url")}
    if len(urls) > 1:
        _fail("datasets.*.url", f"datasets fetched from {archive!r} name different URLs: {sorted(urls)}")
    return f"--url {shlex.quote(urls.pop())}" if urls else ""


def suite_launcher(gpus: int) -> str:
    """`suite`, or for more than one GPU one process per GPU through torchrun (DDP, same global batch)."""
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node={gpus} -m suite"
    return "suite"


def threads_per_process(threads: int) -> int:
    """CPU threads of each training process: the job's threads shared by its torchrun processes."""
    return max(1, threads // max(1, config["train"]["resources"]["gpus"]))


def run_dir(model: str, scale) -> str:
    """Training output folder of model "<preset>-<bias>" at `scale`."""
    return f"{RESULTS}/train/{model}-x{scale}"


def is_finetuned(scale) -> bool:
    source = config["train"]["finetune_from"]
    return source is not None and int(scale) != source


def train_recipe(wildcards) -> str:
    key = "finetune_recipe" if is_finetuned(wildcards.scale) else "recipe"
    return config["train"][key]


def train_init(wildcards) -> list:
    """The checkpoint a fine-tuned scale starts from (nothing for a scale trained from scratch)."""
    if is_finetuned(wildcards.scale):
        return [f"{run_dir(wildcards.model, config['train']['finetune_from'])}/final.pt"]
    return []


def _yaml_value(value) -> str:
    """`value` as one line of YAML, the way `suite train` reads an override's value."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("...\n").strip()


def train_overrides(wildcards, input, output, threads) -> str:
    """Dotted overrides of `suite train` that make the recipe this run: identity, data, device, seed."""
    preset, bias = wildcards.model.rsplit("-", 1)
    values = {
        "name": f"{wildcards.model}-x{wildcards.scale}",
        "out_dir": os.path.dirname(output.final),
        "model.preset": preset,
        "model.bias": bias,
        "model.scale": int(wildcards.scale),
        "data.train": dataset_dir(config["train"]["dataset"]),
        "data.val": dataset_dir(config["train"]["val_dataset"]),
        "run.seed": config["train"]["seed"],
        "run.device": config["device"],
        "run.dtype": config["dtype"],
        "run.threads": threads_per_process(threads),
        **config["train"]["overrides"],
    }
    if input.init:
        values["init_from"] = str(input.init)
    return " ".join(shlex.quote(f"{key}={_yaml_value(value)}") for key, value in values.items())


def eval_options() -> str:
    """Inference options of `suite eval --checkpoint` named in the config."""
    options = []
    if config["eval"]["tile"]:
        options += [f"--tile {config['eval']['tile']}", f"--overlap {config['eval']['overlap']}"]
    if config["eval"]["self_ensemble"]:
        options.append("--self-ensemble")
    return " ".join(options)


def crop_tag() -> str:
    """`{dataset}-x{scale}` constrained to the report's crop, so the rules that also save images run
    there and nowhere else."""
    return f"{{dataset,{re.escape(CROP['dataset'])}}}-x{{scale,{CROP['scale']}}}"


def eval_jsons() -> list:
    bicubic = [f"{RESULTS}/eval/bicubic/{d}-x{s}.json" for d in EVAL_DATASETS for s in SCALES]
    models = [f"{RESULTS}/eval/{m}/{d}-x{s}.json" for m in MODELS for d in EVAL_DATASETS for s in SCALES]
    return bicubic + models


def crop_image_dirs() -> list:
    tag = f"{CROP['dataset']}-x{CROP['scale']}"
    return [f"{RESULTS}/images/{method}/{tag}" for method in ["bicubic", *MODELS]]


def crop_hr_dir() -> str:
    entry = config["datasets"][CROP["dataset"]]
    return f"{dataset_dir(CROP['dataset'])}/{entry.get('hr') or 'HR'}"


def report_options() -> str:
    """Options of `suite report` beyond --results/--out: validation set and the crop to show."""
    options = [
        f"--config {shlex.quote(config['name'])}",
        f"--val-dataset {shlex.quote(config['train']['val_dataset'])}",
        f"--crop-dataset {shlex.quote(CROP['dataset'])}",
        f"--crop-scale {CROP['scale']}",
        f"--crop-hr {shlex.quote(crop_hr_dir())}",
        f"--crop-size {CROP['size']}",
    ]
    if CROP["image"]:
        options.append(f"--crop-image {shlex.quote(CROP['image'])}")
    return " ".join(options)
