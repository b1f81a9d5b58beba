# Helpers shared by the .smk files: names and paths derived from the validated config, the checks
# JSON schema cannot express (one field naming a key of another), the record of the data a results
# folder belongs to, and the command-line fragments the rules pass to `suite`. No rules here.

import functools
import json
import math
import os
import re
import shlex
import tempfile
import urllib.parse

from snakemake.exceptions import WorkflowError

from suite.analysis.outputs import ANALYSIS_OUTPUTS  # the tools' tables, declared without torch
from suite.report.bias_comparison import compares_biases  # the report's declarations import no torch
from suite.report.declare import Contents
from suite.report.paper import PAPER_KEYS  # the paper's rows, read from paper_values.yaml without torch
from suite.report.sections import report_files
from suite.overrides import format_override  # the one override syntax of `suite`

DATA_ROOT = os.path.normpath(config["data_root"])
ENV = "../envs/suite.yaml"  # relative to the rule files


def _fail(field: str, message: str) -> None:
    raise WorkflowError(f"invalid config: {field}: {message}")


def results_name() -> str:
    """The run's name: config `name`, or derived from the data so that results on other data never
    land in the default folder ("default" for the mini benchmark, else "<data_source>-<folder>")."""
    if config["name"] is not None:
        return config["name"]
    if config["data_source"] == "mini":
        return "default"
    folder = re.sub(r"[^A-Za-z0-9_.+-]", "_", os.path.basename(os.path.abspath(DATA_ROOT)))
    return f"{config['data_source']}-{folder.lstrip('.') or 'root'}"


NAME = results_name()
RESULTS = f"results/{NAME}"
LOGS = f"logs/{NAME}"
DATA_RECORD = f"{RESULTS}/data.json"

VERIFY = config.get("verify") is not None
SCALES = config["scales"]
PRESETS = config["train"]["presets"]
BIASES = config["train"]["biases"]
EVAL_DATASETS = config["eval"]["datasets"]
CROP = config["report"]["crop"]
RANKS = config["train"]["ranks"]  # null: every preset's own ranks; a list: the rank ablation


SEEDS = config["train"]["seeds"]


def model_specs() -> dict:
    """Trained models, name -> (preset, bias, rank, seed): "<preset>-<bias>" (e.g. "tiny-rib"), and with
    train.ranks one RIB model per rank R instead, "<preset>-rib-r<R>" (rank R in every layer); with several
    train.seeds every model once per seed, "<name>-s<seed>" (suite.report.readers.MODEL_NAME reads them)."""
    variants = []
    for preset in PRESETS:
        for bias in BIASES:
            if bias == "rib" and RANKS:
                variants += [(f"{preset}-rib-r{rank}", preset, bias, rank) for rank in RANKS]
            else:
                variants.append((f"{preset}-{bias}", preset, bias, None))
    if len(SEEDS) == 1:
        return {name: (preset, bias, rank, SEEDS[0]) for name, preset, bias, rank in variants}
    return {f"{name}-s{seed}": (preset, bias, rank, seed) for name, preset, bias, rank in variants for seed in SEEDS}


MODEL_SPECS = model_specs()
MODELS = list(MODEL_SPECS)
ANALYSIS = config["analysis"]
PROFILE_SWEEP = config["profile"]["sweep"]  # null: no profile sweep (the report then has no speed section)
RELEASED = {model["name"]: model for model in config["verify"]["models"]} if VERIFY else {}


def _check_finite(value, field: str) -> None:
    """No NaN or infinity anywhere (YAML's .nan and .inf pass the schema's bounds)."""
    if isinstance(value, float) and not math.isfinite(value):
        _fail(field, f"{value} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, f"{field}[{index}]")


def dataset_fields() -> dict:
    """Every config field that names datasets -> the names it gives."""
    return {
        "train.dataset": [config["train"]["dataset"]],
        "train.val_dataset": [config["train"]["val_dataset"]],
        "eval.datasets": EVAL_DATASETS,
        "report.crop.dataset": [CROP["dataset"]],
        **{f"train.per_preset.{preset}.dataset": [settings["dataset"]]
           for preset, settings in config["train"]["per_preset"].items() if "dataset" in settings},
        **({"verify.datasets": config["verify"]["datasets"]} if VERIFY else {}),
        **({"analysis.dataset": [ANALYSIS["dataset"]]} if ANALYSIS["dataset"] else {}),
    }


def check_config() -> None:
    """Cross-field checks, before any job: finite numbers, the files the config names exist, every dataset a
    step names exists, the crop is evaluated, released models name a paper row that exists."""
    _check_finite(config, "")
    sweep = config["profile"]["sweep"]
    if sweep is not None and not os.path.isfile(sweep):
        _fail("profile.sweep", f"{sweep!r} is not a file (paths are relative to the repository root)")
    known = sorted(config["datasets"])
    for field, names in dataset_fields().items():
        for name in names:
            if name not in config["datasets"]:
                _fail(field, f"{name!r} is not a key of datasets (have {', '.join(known)})")
    if ANALYSIS["dataset"] and ANALYSIS["dataset"] not in EVAL_DATASETS:
        _fail("analysis.dataset", f"{ANALYSIS['dataset']!r} is not one of eval.datasets {EVAL_DATASETS}")
    if CROP["dataset"] not in EVAL_DATASETS:
        _fail("report.crop.dataset", f"{CROP['dataset']!r} is not one of eval.datasets {EVAL_DATASETS}")
    if CROP["scale"] not in SCALES:
        _fail("report.crop.scale", f"{CROP['scale']} is not one of scales {SCALES}")
    source = config["train"]["finetune_from"]
    if source is not None and source not in SCALES:
        _fail("train.finetune_from", f"{source} is not one of scales {SCALES}")
    if VERIFY:
        names = [model["name"] for model in config["verify"]["models"]]
        for index, model in enumerate(config["verify"]["models"]):
            field = f"verify.models[{index}] ({model['name']})"
            if names.count(model["name"]) > 1:
                _fail(field, f"the name {model['name']!r} is given to {names.count(model['name'])} models")
            given = [key for key in ("url", "path") if model.get(key) is not None]
            if len(given) != 1:
                _fail(field, "give exactly one of url (downloaded) and path (a file placed by hand); "
                      + ("both are given" if given else "neither is (url: null is left to fill in)"))
            if model.get("paper") is not None and model["paper"] not in PAPER_KEYS:
                _fail(field, f"paper {model['paper']!r} is not a row of suite/report/paper_values.yaml")


check_config()


def data_identity() -> dict:
    """What the results of this config are computed on: compared with results/<name>/data.json."""
    return {
        "data_source": config["data_source"],
        "data_root": DATA_ROOT,
        "datasets": {name: entry["path"] for name, entry in sorted(config["datasets"].items())},
    }


def read_data_record() -> dict | None:
    if not os.path.exists(DATA_RECORD):
        return None
    try:
        with open(DATA_RECORD) as handle:
            recorded = json.load(handle)
        recorded["data_source"], recorded["data_root"], dict(recorded["datasets"])
        return recorded
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WorkflowError(f"{DATA_RECORD}: unreadable record of this folder's data ({err!r:.200}); "
                            f"remove {RESULTS}/ or give this run another name (--config name=...)")


def check_data_record() -> None:
    """Refuse to put results on one data into a folder whose results are on other data (or to take
    them as up to date there): results/<name>/data.json names the data of the folder's results. Same
    data: same data_source and data_root, and every dataset both name in the same folder (a dataset
    added to the config is fine)."""
    recorded, current = read_data_record(), data_identity()
    if recorded is not None:
        moved = sorted(name for name in set(recorded["datasets"]) & set(current["datasets"])
                       if recorded["datasets"][name] != current["datasets"][name])
        if (recorded["data_source"], recorded["data_root"]) != (current["data_source"], current["data_root"]) or moved:
            raise WorkflowError(
                f"{RESULTS}/ holds results computed on other data ({DATA_RECORD}: data_source "
                f"{recorded['data_source']!r}, data_root {recorded['data_root']!r}"
                + (f", datasets {', '.join(moved)} in other folders" if moved else "")
                + f"); this run uses data_source {current['data_source']!r}, data_root {current['data_root']!r}: "
                f"give it its own name, e.g. --config name=mydata (or name=null to derive one from the data)")
    elif os.path.isdir(RESULTS) and os.listdir(RESULTS):
        raise WorkflowError(f"{RESULTS}/ holds results but no record of their data ({DATA_RECORD}): "
                            f"remove the folder to recompute it, or give this run another name (--config name=...)")


check_data_record()


onstart:
    # A run that writes into results/<name>/ records its data (check_data_record reads it), adding the
    # datasets it names to those recorded before.
    record = data_identity()
    recorded = read_data_record()
    if recorded is not None:
        record["datasets"] = dict(sorted({**recorded["datasets"], **record["datasets"]}.items()))
    if record != recorded:
        os.makedirs(RESULTS, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=RESULTS, prefix=".data.json.")
        with os.fdopen(handle, "w") as stream:
            json.dump(record, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temp, DATA_RECORD)


wildcard_constraints:
    model="|".join(re.escape(model) for model in MODELS),
    released="|".join(re.escape(name) for name in RELEASED) or "(?!)",
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
        # A folder placed by hand where the archive has no source is used as found: its fetch could not run.
        if fetch_gap(name) and os.path.isdir(dataset_dir(name)):
            return dataset_dir(name)
        return fetch_flag(entry["fetch"])
    return dataset_dir(name)


def fetch_flag(archive: str) -> str:
    return f"{DATA_ROOT}/.ready/fetch-{archive}.done"


def fetch_url(archive: str) -> str | None:
    """The `url` the datasets fetched from `archive` name (at most one), or None."""
    urls = {entry["url"] for entry in config["datasets"].values()
            if entry.get("fetch") == archive and entry.get("url")}
    if len(urls) > 1:
        _fail("datasets.*.url", f"datasets fetched from {archive!r} name different URLs: {sorted(urls)}")
    return urls.pop() if urls else None


def fetch_url_option(archive: str) -> str:
    """`--url URL` when a dataset fetched from `archive` names one, else nothing."""
    url = fetch_url(archive)
    return f"--url {shlex.quote(url)}" if url else ""


# ---- datasets without a source (no public archive, e.g. Manga109) ----


@functools.cache
def fetch_gap(name: str) -> tuple:
    """The archives dataset `name`'s fetch job could not obtain (suite.data.fetch.unsourced_archives: no
    public URL, no url here, no SUITE_DATA_MIRROR, nothing placed under data_root/downloads/), as the paths a
    copy placed by hand takes; empty when it is not fetched or was fetched already (its flag is there)."""
    archive = config["datasets"][name].get("fetch")
    if config["data_source"] != "download" or not archive or os.path.exists(fetch_flag(archive)):
        return ()
    # Imported here, not at the top: suite.data imports torch, which a parse with the data in place skips.
    from suite.data.fetch import unsourced_archives

    return tuple(unsourced_archives(archive, DATA_ROOT, url=fetch_url(archive)))


def missing_source(name: str) -> str | None:
    """Why dataset `name` can be neither fetched nor found (its fetch has no source and its folder is not
    there), for the report's line and the parse's errors; None when it can."""
    gap = fetch_gap(name)
    if not gap or os.path.isdir(dataset_dir(name)):
        return None
    from suite.data.fetch import MIRROR_ENV

    return (f"no source (no url, no archive at {', '.join(map(str, gap))}); give datasets.{name}.url, set "
            f"{MIRROR_ENV}, place the archive there, or the dataset folder at {dataset_dir(name)}")


def check_sources() -> dict:
    """The test sets without a source (missing_source), name -> why: left out of the DAG and named in the
    report, so one missing set does not stop the run at its fetch job. A dataset another step needs (training,
    validation, the crop, the analysis) without one fails the parse naming it, as does a run left no test set."""
    fields = dataset_fields()
    if not VERIFY:  # verification reads only its test sets; the other fields keep their defaults, unused
        for field, names in fields.items():
            for name in names if field != TEST_FIELD else ():
                if missing_source(name):
                    _fail(field, f"{name!r} cannot be obtained: {missing_source(name)}")
    tests = fields[TEST_FIELD]
    skipped = {name: missing_source(name) for name in tests if missing_source(name)}
    if len(skipped) == len(tests):
        _fail(TEST_FIELD, "no test set can be obtained: " + "; ".join(f"{n}: {why}" for n, why in skipped.items()))
    return skipped


TEST_FIELD = "verify.datasets" if VERIFY else "eval.datasets"  # the field naming the test sets this run evaluates
SKIPPED = check_sources()  # test sets left out: name -> why
TEST_SETS = [name for name in dataset_fields()[TEST_FIELD] if name not in SKIPPED]  # those evaluated
ANALYSIS_DATASET = ANALYSIS["dataset"] or TEST_SETS[0]


def skipped_option() -> str:
    """`--skipped NAME=WHY ...`: `suite report` writes one line per test set left out (SKIPPED)."""
    if not SKIPPED:
        return ""
    return "--skipped " + " ".join(shlex.quote(f"{name}={why}") for name, why in SKIPPED.items())


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


def finetune_source(scale) -> int:
    """The scale a fine-tuned scale starts from: the next smaller trained scale from finetune_from up,
    so with scales 2, 3, 4 and finetune_from 2, x3 starts from x2 and x4 from x3 (the official chain)."""
    source = config["train"]["finetune_from"]
    return max(s for s in SCALES if source <= s < int(scale))


def preset_settings(model: str) -> dict:
    return config["train"]["per_preset"].get(MODEL_SPECS[model][0], {})


def preset_dataset(preset: str) -> str:
    """The training set of `preset`: its own (train.per_preset), else train.dataset."""
    return config["train"]["per_preset"].get(preset, {}).get("dataset", config["train"]["dataset"])


def train_dataset(model: str) -> str:
    return preset_dataset(MODEL_SPECS[model][0])


def recipe_source(preset: str, scale) -> tuple[str, str | None]:
    """(config field, recipe file) of `preset` at `scale`: the preset's own file (train.per_preset.*.recipe),
    else train.recipe, or train.finetune_recipe for a fine-tuned scale; "{scale}" replaced by the scale."""
    own = config["train"]["per_preset"].get(preset, {}).get("recipe")
    if own is not None:
        field, pattern = f"train.per_preset.{preset}.recipe", own
    else:
        field = "train.finetune_recipe" if is_finetuned(scale) else "train.recipe"
        pattern = config["train"][field.split(".")[1]]
    return field, None if pattern is None else pattern.replace("{scale}", str(scale))


def train_recipe(wildcards) -> str:
    return recipe_source(MODEL_SPECS[wildcards.model][0], wildcards.scale)[1]


def read_recipe_yaml(path: str) -> dict:
    """A recipe file's own values (suite.train.config validates them; torch is not imported here)."""
    import yaml

    try:
        with open(path) as handle:
            recipe = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise WorkflowError(f"{path}: unreadable recipe ({err})")
    return recipe if isinstance(recipe, dict) else {}


def check_recipe_files() -> None:
    """Every preset has a recipe file at every scale, and a recipe that names its training set names the one the
    workflow gives it (a recipe file is run as it is, its data folder moved to data_root: light's official recipe
    on DIV2K must not be fed DF2K)."""
    for preset in PRESETS:
        for scale in SCALES:
            field, path = recipe_source(preset, scale)
            if path is None:
                _fail(field, f"null, and preset {preset!r} names no recipe of its own (train.per_preset.{preset}.recipe)")
            if not os.path.isfile(path):
                _fail(field, f"{path!r} is not a file (paths are relative to the repository root)")
            named = (read_recipe_yaml(path).get("data") or {}).get("train")
            dataset = preset_dataset(preset)  # a key of datasets: check_config has run
            folder = os.path.basename(os.path.normpath(config["datasets"][dataset]["path"]))
            if named and os.path.basename(os.path.normpath(str(named))) != folder:
                _fail(field, f"{path} trains on {named!r}, but the workflow gives {preset!r} the training set "
                             f"{dataset!r} ({config['datasets'][dataset]['path']}): name the recipe's set in "
                             f"train.per_preset.{preset}.dataset")


if not VERIFY:
    check_recipe_files()


def train_init(wildcards) -> list:
    """The checkpoint a fine-tuned scale starts from (nothing for a scale trained from scratch)."""
    if is_finetuned(wildcards.scale):
        return [f"{run_dir(wildcards.model, finetune_source(wildcards.scale))}/final.pt"]
    return []


def _overrides(values: dict) -> str:
    """`KEY=VALUE ...` as `--override` reads them (suite.overrides.format_override), shell-quoted."""
    return " ".join(shlex.quote(format_override(key, value)) for key, value in values.items())


def recipe_overrides(wildcards) -> str:
    """Dotted overrides of `suite train` that make the recipe this run computes: identity, data,
    device, seed, precision and the config's overrides. A function of the wildcards only, so that
    Snakemake records it and runs the job again when it changes (params of input, output or threads
    are not compared)."""
    return _overrides(recipe_override_values(wildcards))


def recipe_override_values(wildcards) -> dict:
    """recipe_overrides as {dotted key: value}."""
    preset, bias, rank, seed = MODEL_SPECS[wildcards.model]
    return {
        "name": f"{wildcards.model}-x{wildcards.scale}",
        "model.preset": preset,
        "model.bias": bias,
        "model.scale": int(wildcards.scale),
        **({"model.overrides.ranks": rank} if rank is not None else {}),
        "data.train": dataset_dir(train_dataset(wildcards.model)),
        "data.val": dataset_dir(config["train"]["val_dataset"]),
        "run.seed": seed,
        "run.device": config["device"],
        "run.precision": config["precision"],
        **config["train"]["overrides"],
        **preset_settings(wildcards.model).get("overrides", {}),
    }


def placement_overrides(wildcards, input, output, threads) -> str:
    """Overrides that place the run: its folder, its initial weights (tracked as an input), threads."""
    values = {"out_dir": os.path.dirname(output.final), "run.threads": threads_per_process(threads)}
    if input.init:
        values["init_from"] = str(input.init)
    elif read_recipe_yaml(str(input.recipe)).get("init_from") is not None:
        values["init_from"] = None  # the workflow trains this scale from scratch: not from the recipe's own run
    return _overrides(values)


def check_train_overrides() -> None:
    """train.overrides and train.per_preset.*.overrides are free-form dotted recipe fields: put each model's
    and scale's recipe through the recipe validator now, so that a bad value fails the dry run naming the
    field, not a training job once it starts. The validator imports torch: only done where overrides are given."""
    per_preset = {preset: settings.get("overrides") for preset, settings in config["train"]["per_preset"].items()}
    if not config["train"]["overrides"] and not any(per_preset.values()):
        return
    from types import SimpleNamespace

    from suite.train.config import load_recipe

    for model in MODELS:
        preset = MODEL_SPECS[model][0]
        for scale in SCALES:
            wildcards = SimpleNamespace(model=model, scale=str(scale))
            values = {**recipe_override_values(wildcards), "out_dir": run_dir(model, scale)}
            try:
                load_recipe(train_recipe(wildcards), [format_override(key, value) for key, value in values.items()])
            except (ValueError, OSError) as err:
                field = "train.overrides"
                if per_preset.get(preset):
                    field += f" / train.per_preset.{preset}.overrides"
                _fail(field, f"the recipe of {model} x{scale} is refused: {err}")


check_train_overrides()


def eval_options() -> str:
    """Inference options of `suite eval --checkpoint` named in the config."""
    options = [f"--device {config['device']}", f"--precision {config['precision']}"]
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
    bicubic = [f"{RESULTS}/eval/bicubic/{d}-x{s}.json" for d in TEST_SETS for s in SCALES]
    models = [f"{RESULTS}/eval/{m}/{d}-x{s}.json" for m in MODELS for d in TEST_SETS for s in SCALES]
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
        f"--title {shlex.quote(NAME)}",
        f"--val-dataset {shlex.quote(config['train']['val_dataset'])}",
        f"--analysis-dataset {shlex.quote(ANALYSIS_DATASET)}",
        f"--crop-dataset {shlex.quote(CROP['dataset'])}",
        f"--crop-scale {CROP['scale']}",
        f"--crop-hr {shlex.quote(crop_hr_dir())}",
        f"--crop-size {CROP['size']}",
    ]
    if CROP["image"]:
        options.append(f"--crop-image {shlex.quote(CROP['image'])}")
    options.append(paper_rows_option(config["report"]["paper_rows"]))
    options.append(skipped_option())
    return " ".join(options)


def paper_rows_option(rows: dict) -> str:
    """`--paper-rows METHOD=ROW ...`: compare results/<name>/eval/METHOD/ with the paper's row ROW."""
    if not rows:
        return ""
    return "--paper-rows " + " ".join(shlex.quote(f"{method}={row}") for method, row in rows.items())


# ---- released-model verification (config `verify`) ----


def released_source(name: str) -> str:
    """Where `suite data fetch-file` takes model `name`'s checkpoint from: its URL, or the file placed
    by hand (copied with the same checksum lock, so what is evaluated is pinned either way)."""
    model = RELEASED[name]
    return model["url"] if model.get("url") else os.path.abspath(model["path"])


def released_checkpoint(name: str) -> str:
    """Where model `name`'s checkpoint is fetched to: data_root/released/<name> with its source's suffix (one of
    suite.data.fetch.CHECKPOINT_SUFFIXES, e.g. .safetensors; .pth where the source ends in none, as a URL with a
    query may), which tells `suite data fetch-file`'s checks and the loader the file's format."""
    from suite.data.fetch import CHECKPOINT_SUFFIXES  # verification only: suite.data imports torch

    source = released_source(name)
    path = urllib.parse.urlparse(source).path if "://" in source else source
    suffix = next((suffix for suffix in CHECKPOINT_SUFFIXES if path.lower().endswith(suffix)), ".pth")
    return f"{DATA_ROOT}/released/{name}{suffix}"


def checkpoint_suffix_pattern() -> str:
    """The wildcard pattern of a released checkpoint's suffix (released_checkpoint's choices)."""
    from suite.data.fetch import CHECKPOINT_SUFFIXES

    return "|".join(re.escape(suffix) for suffix in CHECKPOINT_SUFFIXES)


def released_sha256_option(name: str) -> str:
    sha256 = RELEASED[name].get("sha256")
    return f"--sha256 {sha256}" if sha256 else ""


def released_model_options(name: str) -> str:
    """`suite eval` options that name the network a released checkpoint is loaded into."""
    model = RELEASED[name]
    options = [f"--preset {shlex.quote(model['preset'])}", f"--bias {model.get('bias') or 'rib'}"]
    overrides = model.get("model_overrides") or {}
    if overrides:
        options.append("--override " + " ".join(
            shlex.quote(format_override(key, value)) for key, value in overrides.items()))
    return " ".join(options)


def verify_jsons() -> list:
    return [f"{RESULTS}/eval/{name}/{dataset}-x{model['scale']}.json"
            for name, model in RELEASED.items() for dataset in TEST_SETS]


def verify_paper_options() -> str:
    return paper_rows_option({name: model["paper"] for name, model in RELEASED.items() if model.get("paper")})


# ---- the report's outputs (declared by its sections: suite.report.sections) ----


CAPTIONS = os.path.abspath(".snakemake/report-captions")  # the HTML report's captions, from the declarations


def caption_file(name: str, caption: str) -> str:
    """A file's caption as the RST file Snakemake's HTML report reads (Markdown's `code` becomes ``code``),
    written when the workflow is parsed and rewritten only when it changed."""
    path = os.path.join(CAPTIONS, f"{name}.rst")
    text = re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", caption) + "\n"
    try:
        with open(path) as handle:
            if handle.read() == text:
                return path
    except OSError:
        pass
    os.makedirs(CAPTIONS, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=CAPTIONS, prefix=f".{name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temp, path)
    return path


def report_outputs(contents: Contents) -> dict:
    """The files `suite report` writes for results holding `contents`, by name (suite.report.sections); those
    shown in Snakemake's HTML report carry their declared caption."""
    outputs = {"report_md": f"{RESULTS}/REPORT.md"}
    for file in report_files(contents):
        path = f"{RESULTS}/{file.path}"
        outputs[file.key] = (report(path, caption=caption_file(file.key, file.caption), category=file.category)
                             if file.caption else path)
    return outputs


# ---- research tools on the trained models (config `analysis`; suite analyze) ----


# tool -> whether the config runs it (the tools, their tables and the biases they apply to: suite.analysis.outputs)
ANALYSIS_ENABLED = {"bias": bool(ANALYSIS["bias_fields"]), "lowrank": bool(ANALYSIS["lowrank_ranks"]),
                    "windows": bool(ANALYSIS["window_factors"])}


def analysis_outputs_by_tool() -> dict:
    """Per tool, its table for every trained model and scale whose bias it applies to (by the bias's kind in
    the registry, as suite.analysis.outputs declares), where the config runs it."""
    return {tool: [os.path.join(RESULTS, "analysis", tool, f"{model}-x{scale}", output.table.csv_name)
                   for model, (_, bias, _, _) in MODEL_SPECS.items() if bias in output.biases
                   for scale in SCALES] if ANALYSIS_ENABLED[tool] else []
            for tool, output in ANALYSIS_OUTPUTS.items()}


def analysis_tables(tool: str) -> dict:
    """The CSV and JSON of `tool`'s table for "{model}-x{scale}", named as suite.analysis.outputs declares."""
    table = ANALYSIS_OUTPUTS[tool].table
    folder = f"{RESULTS}/analysis/{tool}/{{model}}-x{{scale}}"
    return {"table": f"{folder}/{table.csv_name}", "table_json": f"{folder}/{table.json_name}"}


def analysis_outputs() -> list:
    return [path for paths in analysis_outputs_by_tool().values() for path in paths]


def analysis_timing_options() -> str:
    """Device, threads and rounds of the timed analyses (low rank, windows) named in the config."""
    timing = ANALYSIS["timing"]
    return (f"--device {config['device']} --threads {ANALYSIS['resources']['threads']} "
            f"--rounds {timing['rounds']} --warmup {timing['warmup']}")


# What the default report rule's results hold (suite.report.declare.Contents), predicted from the config.
REPORT_CONTENTS = Contents(
    profile=PROFILE_SWEEP is not None,
    paper_rows=bool(config["report"]["paper_rows"]),
    rank_ablation=any(rank is not None for _, _, rank, _ in MODEL_SPECS.values()),
    compared_biases=compares_biases(bias for _, bias, _, _ in MODEL_SPECS.values()),
    seeds=len(SEEDS) > 1,
    analysis=frozenset(tool for tool, paths in analysis_outputs_by_tool().items() if paths),
    crop=True,
)
# The verify report: released models' evaluations, beside their paper rows where the config names them.
VERIFY_CONTENTS = Contents(paper_rows=any(model.get("paper") for model in RELEASED.values()))
