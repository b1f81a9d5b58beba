"""The Snakemake workflow resolves: dry runs of the default, paper and verify configs, lint, config
errors, the schema's lists against the package's constants, and results on other data kept apart.

Each test runs on a copy of the Snakefile, workflows/ and the sweep files in a temporary folder, so
results already in the checkout cannot change what the dry run plans.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SWEEPS, copy_workflow, job_counts, shell_lines, snakemake
from suite.report.declare import Contents
from suite.report.sections import report_files

SCHEMA = REPO / "workflows/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def filled_verify_urls(workdir: Path, suffixes: dict[str, str] | None = None) -> str:
    """A config file over workflows/config/verify.yaml that fills only each model's `url:` (as a user does; the
    file ships them null), ending in `suffixes[name]` (default .pth) -> its name, relative to `workdir`."""
    models = yaml.safe_load((workdir / "workflows/config/verify.yaml").read_text())["verify"]["models"]
    for model in models:
        model["url"] = f"https://example.org/sst/{model['name']}{(suffixes or {}).get(model['name'], '.pth')}"
    (workdir / "urls.yaml").write_text(yaml.safe_dump({"verify": {"models": models}}))
    return "urls.yaml"


def test_default_dry_run_plans_every_step(workdir: Path) -> None:
    done = snakemake(workdir, "-n", "-p")
    assert done.returncode == 0, done.stdout + done.stderr
    assert job_counts(done.stdout) == {
        "data_mini": 1,
        "train": 2,
        "eval_bicubic_with_images": 1,
        "eval_checkpoint_with_images": 2,
        "profile_sweep": 1,
        "analyze_bias": 2,
        "analyze_lowrank": 1,
        "analyze_windows": 2,
        "report": 1,
        "all": 1,
        "total": 14,
    }
    # The research tools: bias fields of both models, the RPB model at low rank, both at scaled windows.
    assert len(shell_lines(done.stdout, "suite analyze bias --checkpoint results/default/train/")) == 2
    lowrank = shell_lines(done.stdout, "suite analyze lowrank")
    assert len(lowrank) == 1 and "tiny-rpb-x2/final.pt --ranks 0 8" in lowrank[0]
    assert "--data data/mini/test --scale 2 --name mini_test --device cpu --threads 2 --rounds 3" in lowrank[0]
    windows = shell_lines(done.stdout, "suite analyze windows")
    assert len(windows) == 2 and all("--factors 0.5 1 2 " in line for line in windows)
    assert "suite data mini --root data/mini" in done.stdout
    train = shell_lines(done.stdout, " train --config workflows/config/recipes/tiny_cpu.yaml")
    assert len(train) == 2 and all("--resume-or-restart" in line and "run.precision=fp32" in line for line in train)
    assert "model.bias=rpb" in done.stdout and "model.bias=rib" in done.stdout
    sweep = shell_lines(done.stdout, "suite profile sweep")
    assert sweep and "--config suite/profiling/configs/tiny_cpu.yaml" in sweep[0] and "--resume" in sweep[0]
    assert "results/default/REPORT.md" in done.stdout and "--title default" in done.stdout
    assert "--paper-rows" not in done.stdout
    # Two biases trained (RPB, RIB): the report compares them, on the analysis dataset.
    assert "results/default/tables/biases.csv" in done.stdout and "results/default/figures/biases.png" in done.stdout
    assert "--analysis-dataset mini_test" in shell_lines(done.stdout, "suite report")[0]
    # The report rule's outputs are the files the report's sections declare for this config's results, and
    # the HTML report's captions are written from the same declarations.
    contents = Contents(
        profile=True, compared_biases=True, analysis=frozenset({"bias", "lowrank", "windows"}), crop=True
    )
    declared = {f"results/default/{file.path}" for file in report_files(contents)} | {"results/default/REPORT.md"}
    assert set(rule_outputs(done.stdout, "report")) == declared
    caption = (workdir / ".snakemake/report-captions/val_psnr_png.rst").read_text()
    assert caption == next(file.caption for file in report_files(contents) if file.key == "val_psnr_png") + "\n"


def rule_outputs(output: str, rule: str) -> list[str]:
    """The output files of `rule`'s job as a dry run prints them."""
    block = output.split(f"rule {rule}:\n", 1)[1]
    line = next(line.strip() for line in block.splitlines() if line.strip().startswith("output:"))
    return line.removeprefix("output:").strip().split(", ")


# Each paper preset's official option (workflows/config/recipes/official/<option>_X<scale>.yaml) and training set.
PAPER_RECIPES = {
    "light": ("SSTlight_DIV2K", "DIV2K"),
    "light+": ("SSTlight_Plus_DIV2K", "DIV2K"),
    "base": ("SST_DF2K", "DF2K"),
    "base+": ("SST_Plus_DF2K", "DF2K"),
    "large": ("SSTLarge_DF2K", "DF2K"),
    "large+": ("SSTLarge_Plus_DF2K", "DF2K"),
}


def test_paper_dry_run_plans_the_papers_models(workdir: Path) -> None:
    done = snakemake(workdir, "-n", "-p", "--cores", "16", "--configfile", "workflows/config/paper.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    # Manga109 has no source until its url is given: its evaluations are left out, the report says so.
    models, datasets, scales = len(PAPER_RECIPES), 4, 3
    counts = job_counts(done.stdout)
    assert counts["train"] == models * scales
    assert counts["eval_checkpoint"] + counts["eval_checkpoint_with_images"] == models * datasets * scales
    assert counts["eval_bicubic"] + counts["eval_bicubic_with_images"] == datasets * scales
    assert counts["data_fetch"] == 3  # DF2K, DIV2K, benchmark
    assert "Manga109=no source" in shell_lines(done.stdout, "suite report")[0]
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(done.stdout, " train --config")}
    assert sorted(trains) == sorted(f"{p}-rib-x{s}" for p in PAPER_RECIPES for s in (2, 3, 4))
    # Every model runs its preset's official recipe file of that scale, as it is: the workflow places the run
    # (name, folders, seed, device) and sets nothing the recipe decides. x3 from x2, x4 from x3.
    for name, line in trains.items():
        preset, scale = re.fullmatch(r"(.+)-rib-x(\d)", name).groups()
        option, data = PAPER_RECIPES[preset]
        assert f"--config workflows/config/recipes/official/{option}_X{scale}.yaml " in line, line
        assert f"data.train=data/paper/{data} " in line, line
        assert "torchrun --standalone --nproc_per_node=4 -m suite train" in line
        assert not re.search(r"data\.(batch_size|lr_patch|on_the_fly|subimages)|optim\.|schedule\.", line), line
        if scale == "2":
            assert "init_from=" not in line
        else:
            assert f"init_from=results/paper/train/{preset}-rib-x{int(scale) - 1}/final.pt" in line
    assert "suite data fetch DF2K --root data/paper" in done.stdout
    assert "suite data fetch DIV2K --root data/paper" in done.stdout
    assert "--paper-rows 'large+-rib=SST-L+ (DF2K)'" in shell_lines(done.stdout, "suite report")[0]
    assert "suite data fetch benchmark --root data/paper" in done.stdout
    assert "figures/biases.png" not in done.stdout  # one bias (RIB): nothing to compare


def test_a_scale_the_workflow_trains_from_scratch_does_not_start_from_the_recipes_run(workdir: Path) -> None:
    """The official x3 recipe starts from runs/<option>_X2/final.pt; with finetune_from null the workflow trains
    every scale from scratch, so it sets init_from null rather than leave the recipe's own chain in place."""
    (workdir / "scratch.yaml").write_text("train: {finetune_from: null, presets: [light]}\n")
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/paper.yaml", "scratch.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(done.stdout, " train --config")}
    assert "init_from" not in trains["light-rib-x2"]  # the x2 recipe starts from scratch itself
    for scale in (3, 4):
        assert f"recipes/official/SSTlight_DIV2K_X{scale}.yaml " in trains[f"light-rib-x{scale}"]
        assert " init_from=null" in trains[f"light-rib-x{scale}"], trains[f"light-rib-x{scale}"]


def test_a_preset_recipe_on_another_training_set_is_refused(workdir: Path) -> None:
    """light's official recipe trains on DIV2K: the workflow giving it DF2K fails the dry run, naming both."""
    (workdir / "light_on_df2k.yaml").write_text("train: {per_preset: {light: {dataset: DF2K}}}\n")
    done = snakemake(workdir, "-n", "--configfile", "workflows/config/paper.yaml", "light_on_df2k.yaml")
    message = done.stdout + done.stderr
    assert done.returncode != 0
    assert "invalid config: train.per_preset.light.recipe" in message and "'data/paper/DIV2K'" in message, message
    assert "training set 'DF2K'" in message


def test_ablation_dry_run_trains_one_rib_model_per_rank(workdir: Path) -> None:
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/ablation.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    counts = job_counts(done.stdout)
    assert counts["train"] == 6 and counts["eval_checkpoint_with_images"] == 6
    assert not {"profile_sweep", "analyze_bias", "analyze_lowrank", "analyze_windows"} & set(counts)
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(done.stdout, " train --config")}
    assert sorted(trains) == sorted([f"tiny-rib-r{rank}-x2" for rank in (2, 4, 8, 16, 32)] + ["tiny-none-x2"])
    for rank in (2, 4, 8, 16, 32):
        line = trains[f"tiny-rib-r{rank}-x2"]
        assert f"model.overrides.ranks={rank} " in line and "model.bias=rib" in line and "run.seed=0" in line
        assert f"out_dir=results/ablation/train/tiny-rib-r{rank}-x2" in line
    assert "model.overrides.ranks" not in trains["tiny-none-x2"]
    assert "results/ablation/figures/rank_ablation.png" in done.stdout
    assert "results/ablation/figures/biases.png" in done.stdout  # RIB and no bias


def test_biases_dry_run_trains_every_registered_bias(workdir: Path) -> None:
    """workflows/config/biases.yaml: one tiny model per bias of the registry, the default recipe and seed,
    each evaluated and extrapolated to other windows; the report compares them."""
    from suite.models.biases import BIASES, REGISTRY

    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/biases.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    counts = job_counts(done.stdout)
    assert counts["train"] == len(BIASES) and counts["eval_checkpoint_with_images"] == len(BIASES)
    assert counts["analyze_windows"] == len(BIASES)
    assert not {"profile_sweep", "analyze_bias", "analyze_lowrank"} & set(counts)
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(done.stdout, " train --config")}
    assert sorted(trains) == sorted(f"tiny-{bias}-x2" for bias in BIASES)
    for bias in BIASES:
        line = trains[f"tiny-{bias}-x2"]
        assert f"model.bias={bias} " in line and "run.seed=0" in line and "model.overrides.ranks" not in line
        assert "--config workflows/config/recipes/tiny_cpu.yaml" in line
    windows = {
        re.search(r"results/biases/train/(\S+)/final\.pt", line)[1]: line
        for line in shell_lines(done.stdout, "suite analyze windows")
    }
    assert sorted(windows) == sorted(f"tiny-{bias}-x2" for bias in BIASES)
    assert all("--factors 0.5 1 2 " in line and "--name mini_test" in line for line in windows.values())
    assert any(spec.fixed_window for spec in REGISTRY.values())  # those show refused rows in their tables
    report = shell_lines(done.stdout, "suite report")[0]
    assert "--title biases" in report and "--analysis-dataset mini_test" in report
    for path in (
        "tables/biases.csv",
        "tables/biases.md",
        "figures/biases.png",
        "figures/biases.pdf",
        "tables/windows.csv",
    ):
        assert f"results/biases/{path}" in done.stdout
    assert "results/biases/figures/speedup.png" not in done.stdout and "bias_fields" not in done.stdout


def test_cpu_study_trains_each_bias_once_per_seed(workdir: Path) -> None:
    """workflows/config/cpu-study.yaml: train.seeds gives each model one run per seed, named with its seed and
    trained with it; the report's outputs include the table over seeds."""
    study = yaml.safe_load((REPO / "workflows/config/cpu-study.yaml").read_text())
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/cpu-study.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    seeds, biases = study["train"]["seeds"], study["train"]["biases"]
    assert len(seeds) > 1 and {"rpb", "rib", "none"} <= set(biases)
    counts = job_counts(done.stdout)
    assert counts["train"] == len(biases) * len(seeds) == counts["eval_checkpoint_with_images"]
    assert not {"profile_sweep", "analyze_bias", "analyze_lowrank", "analyze_windows"} & set(counts)
    trains = {re.search(r"name=(\S+)", line)[1]: line for line in shell_lines(done.stdout, " train --config")}
    assert sorted(trains) == sorted(f"tiny-{bias}-s{seed}-x2" for bias in biases for seed in seeds)
    for bias in biases:
        for seed in seeds:
            line = trains[f"tiny-{bias}-s{seed}-x2"]
            assert (
                f"model.bias={bias} " in line and f"run.seed={seed} " in line and "optim.positional_lr_scale=10" in line
            )
            assert f"out_dir=results/cpu-study/train/tiny-{bias}-s{seed}-x2 " in line
    for path in ("tables/seeds.csv", "tables/seeds.md", "tables/biases.csv", "tables/targets.md"):
        assert f"results/cpu-study/{path}" in done.stdout


def test_analysis_tools_follow_the_kind_of_each_bias(tmp_path: Path) -> None:
    """With every tool on, bias fields run on the models suite analyze bias can read (ANALYSED_BIASES: additive
    and factored kinds), the low-rank conversion on the additive ones (RPB), windows on every model."""
    from suite.analysis.bias_fields import ANALYSED_BIASES
    from suite.models.biases import BIASES, REGISTRY

    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "tools.yaml").write_text(yaml.safe_dump({"analysis": {"bias_fields": True, "lowrank_ranks": [4]}}))
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/biases.yaml", "tools.yaml")
    assert done.returncode == 0, done.stdout + done.stderr

    def models(tool: str) -> list[str]:
        lines = shell_lines(done.stdout, f"suite analyze {tool} --checkpoint")
        return sorted(re.search(r"results/biases/train/tiny-(\S+)-x2/final\.pt", line)[1] for line in lines)

    assert models("bias") == sorted(ANALYSED_BIASES)
    assert models("lowrank") == sorted(b for b in BIASES if REGISTRY[b].kind == "additive") == ["rpb"]
    assert models("windows") == sorted(BIASES)
    assert "results/biases/tables/bias_fields.csv" in done.stdout and "results/biases/tables/lowrank.csv" in done.stdout


def test_paper_dry_run_passes_a_manga109_url_to_fetch(tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "mirror.yaml").write_text(
        yaml.safe_dump(
            {"datasets": {"Manga109": {"path": "Manga109", "fetch": "Manga109", "url": "https://example.org/m.zip"}}}
        )
    )
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/paper.yaml", "mirror.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "suite data fetch Manga109 --root data/paper --url https://example.org/m.zip" in done.stdout


def test_verify_dry_run_evaluates_released_models_without_training(workdir: Path) -> None:
    """verify.yaml with only its `url:`s filled (one .safetensors): every model is evaluated on the test sets with
    a source; Manga109, which has none here, is left out and named in the report's options."""
    models = yaml.safe_load((workdir / "workflows/config/verify.yaml").read_text())["verify"]["models"]
    safetensors = models[0]["name"]
    urls = filled_verify_urls(workdir, {safetensors: ".safetensors"})
    done = snakemake(workdir, "-n", "-p", "--configfile", "workflows/config/verify.yaml", urls)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = job_counts(done.stdout)
    assert counts == {
        "data_fetch": 1,  # benchmark; Manga109 has no source
        "verify_fetch_checkpoint": len(models),
        "verify_eval": 4 * len(models),
        "verify_report": 1,
        "all": 1,
        "total": 1 + 5 * len(models) + 2,
    }
    evals = shell_lines(done.stdout, "suite eval --checkpoint")
    assert len(evals) == 4 * len(models) and not any("Manga109" in line for line in evals)
    assert "suite data fetch Manga109" not in done.stdout
    for model in models:
        suffix = ".safetensors" if model["name"] == safetensors else ".pth"
        mine = [line for line in evals if f"data/paper/released/{model['name']}{suffix} " in line]
        assert len(mine) == 4 and all(
            f"--scale {model['scale']} " in line and "--preset XL+" in line and "--precision attention-bf16" in line
            for line in mine
        )
    assert "train" not in counts and "profile_sweep" not in counts
    report = shell_lines(done.stdout, "suite report")[0]
    assert "--title verify" in report and "'SSTXL_Plus_DFLIP_X4=SST-XL+ (DFLIP)'" in report
    assert "--skipped 'Manga109=no source (no url, no archive at data/paper/downloads/Manga109.zip); give " in report
    assert f"--out data/paper/released/{safetensors}.safetensors" in done.stdout


def test_lint_is_clean(workdir: Path) -> None:
    for config in ("default", "paper", "verify", "biases"):
        filled = [filled_verify_urls(workdir)] if config == "verify" else []  # verify.yaml ships its urls null
        done = snakemake(workdir, "--lint", "--configfile", f"workflows/config/{config}.yaml", *filled)
        assert done.returncode == 0 and "Lints for" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize(
    "override, field",
    [
        ({"train": {"seeds": [0, "one"]}}, "['train']['seeds'][1]"),
        ({"train": {"seeds": [1, 1]}}, "['train']['seeds']"),
        ({"name": "../elsewhere"}, "['name']"),
        ({"data_source": "ftp"}, "['data_source']"),
        ({"precision": "bf16"}, "['precision']"),
        ({"train": {"biases": ["rpb", "alibi"]}}, "['train']['biases'][1]"),
        ({"train": {"presets": ["huge"]}}, "['train']['presets'][0]"),
        ({"datasets": {"mini_test": {"path": "test", "fetch": "ImageNet"}}}, "['datasets']['mini_test']['fetch']"),
        ({"analysis": {"lowrank_ranks": [4, -1]}}, "['analysis']['lowrank_ranks'][1]"),
        ({"analysis": {"window_factors": [0, 1]}}, "['analysis']['window_factors'][0]"),
        ({"train": {"ranks": [8, 0]}}, "['train']['ranks'][1]"),
        (
            {
                "verify": {
                    "datasets": ["mini_test"],
                    "resources": {"threads": 1, "gpus": 0, "mem_mb": 100, "runtime": 1},
                    "models": [{"name": "m", "preset": "tiny", "scale": 5, "path": "m.pth"}],
                }
            },
            "['verify']['models'][0]['preset']",
        ),
    ],
)
def test_the_schema_refuses_a_bad_value_naming_the_field(override: dict, field: str) -> None:
    """What the JSON schema alone refuses, checked as the Snakefile checks it (snakemake.utils.validate on
    the default config with the override merged as --configfile merges it); that the workflow runs this
    validation before any job is the first case below."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "workflows/config/default.yaml").read_text())
    update_config(config, override)
    with pytest.raises(WorkflowError) as refused:
        validate(config, str(SCHEMA))
    assert field in str(refused.value)


@pytest.mark.parametrize(
    "override, field",
    [
        ({"trian": {"seed": 0}}, "'trian' was unexpected"),  # the schema, through the workflow
        ({"eval": {"datasets": ["mini_test", "Set5"]}}, "eval.datasets: 'Set5' is not a key of datasets"),
        ({"report": {"crop": {"scale": 3}}}, "report.crop.scale: 3 is not one of scales [2]"),
        # per_preset may set presets this config does not train (paper-micro.yaml over paper.yaml), not unknown ones
        ({"train": {"per_preset": {"huge": {"dataset": "mini_train"}}}}, "'huge' is not one of"),
        (
            {"train": {"per_preset": {"tiny": {"recipe": "recipes/nope_X{scale}.yaml"}}}},
            "train.per_preset.tiny.recipe: 'recipes/nope_X2.yaml' is not a file",
        ),
        ({"train": {"recipe": None}}, "train.recipe: null, and preset 'tiny' names no recipe of its own"),
        (
            {"train": {"per_preset": {"tiny": {"dataset": "DF2K"}}}},
            "train.per_preset.tiny.dataset: 'DF2K' is not a key",
        ),
        ({"analysis": {"dataset": "Set5"}}, "analysis.dataset: 'Set5' is not a key of datasets"),
        (
            {"datasets": {"extra": {"path": "test"}}, "analysis": {"dataset": "extra"}},
            "analysis.dataset: 'extra' is not one of eval.datasets",
        ),
        (
            {
                "verify": {
                    "datasets": ["mini_test"],
                    "resources": {"threads": 1, "gpus": 0, "mem_mb": 100, "runtime": 1},
                    "models": [{"name": "m", "preset": "base", "scale": 2}],
                }
            },
            "verify.models[0] (m): give exactly one of url (downloaded) and path (a file placed by hand); neither",
        ),
        (
            {
                "verify": {
                    "datasets": ["mini_test"],
                    "resources": {"threads": 1, "gpus": 0, "mem_mb": 100, "runtime": 1},
                    "models": [{"name": "m", "preset": "base", "scale": 2, "url": "https://x/m.pth", "path": "m.pth"}],
                }
            },
            "verify.models[0] (m): give exactly one of url (downloaded) and path (a file placed by hand); both",
        ),
        (
            {
                "datasets": {"Manga109": {"path": "Manga109", "fetch": "Manga109"}},
                "data_source": "download",
                "eval": {"datasets": ["mini_test", "Manga109"]},
                "analysis": {"dataset": "Manga109"},
            },
            "analysis.dataset: 'Manga109' cannot be obtained: no source (no url, no archive at "
            "data/mini/downloads/Manga109.zip)",
        ),
        (
            {
                "verify": {
                    "datasets": ["mini_test"],
                    "resources": {"threads": 1, "gpus": 0, "mem_mb": 100, "runtime": 1},
                    "models": [{"name": "m", "preset": "base", "scale": 2, "path": "m.pth", "paper": "SST-XXL"}],
                }
            },
            "verify.models[0] (m): paper 'SST-XXL' is not a row of suite/report/paper_values.yaml",
        ),
        ({"analysis": {"window_factors": [float("nan"), 1]}}, "analysis.window_factors[0]: nan is not a finite number"),
        ({"train": {"recipe": "recipes/missing.yaml"}}, "train.recipe: 'recipes/missing.yaml' is not a file"),
        (
            {"train": {"overrides": {"optim.lr": "fast"}}},
            "train.overrides: the recipe of tiny-rpb x2 is refused: workflows/config/recipes/tiny_cpu.yaml: "
            "optim.lr = 'fast' must be a finite number",
        ),
        ({"train": {"overrides": {"optim.learning_rate": 0.1}}}, "unknown field(s) optim.learning_rate"),
        (
            {"train": {"per_preset": {"tiny": {"overrides": {"data.lr_patch": 0}}}}},
            "train.overrides / train.per_preset.tiny.overrides: the recipe of tiny-rpb x2 is refused: "
            "workflows/config/recipes/tiny_cpu.yaml: data.lr_patch = 0 must be >= 1",
        ),
    ],
)
def test_invalid_config_fails_before_any_job_naming_the_field(tmp_path: Path, override: dict, field: str) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "bad.yaml").write_text(yaml.safe_dump(override))
    done = snakemake(workdir, "-n", "--configfile", "bad.yaml")
    assert done.returncode != 0
    assert field in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Job stats" not in done.stdout


def test_schema_lists_equal_the_package_constants() -> None:
    """The schema names presets, biases, precisions and fetch sources by value (JSON schema cannot
    import them): this keeps each list equal to the constant the suite checks against."""
    from suite.data.fetch import FETCH_NAMES
    from suite.models import BIASES, OFFICIAL_NAMES, PRECISIONS, PRESETS

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["$defs"]["preset"]["enum"] == list(PRESETS)
    assert schema["$defs"]["official_preset"]["enum"] == list(OFFICIAL_NAMES)
    assert schema["$defs"]["bias"]["enum"] == list(BIASES)
    assert schema["properties"]["precision"]["enum"] == list(PRECISIONS)
    fetch = schema["properties"]["datasets"]["additionalProperties"]["properties"]["fetch"]["enum"]
    assert fetch == [*FETCH_NAMES, None]


def test_paper_rows_of_the_configs_are_rows_of_the_paper_values() -> None:
    from suite.report.paper import PAPER_KEYS

    paper = yaml.safe_load((REPO / "workflows/config/paper.yaml").read_text())
    verify = yaml.safe_load((REPO / "workflows/config/verify.yaml").read_text())
    rows = {**paper["report"]["paper_rows"], **{m["name"]: m["paper"] for m in verify["verify"]["models"]}}
    assert rows == {"large+-rib": "SST-L+ (DF2K)", **{f"SSTXL_Plus_DFLIP_X{s}": "SST-XL+ (DFLIP)" for s in (2, 3, 4)}}
    assert set(rows.values()) <= set(PAPER_KEYS)


def test_sweep_files_live_in_one_folder() -> None:
    """Every sweep file (a YAML with `variants` and `points`) of the package and the workflow sits in
    suite/profiling/configs/, and the workflow configs name theirs there."""

    def is_sweep(path: Path) -> bool:
        content = yaml.safe_load(path.read_text())
        return isinstance(content, dict) and {"variants", "points"} <= set(content)

    sweeps = [path for folder in ("suite", "workflows") for path in (REPO / folder).rglob("*.yaml") if is_sweep(path)]
    assert sweeps and {path.parent for path in sweeps} == {REPO / SWEEPS}, sweeps
    for config in (REPO / "workflows/config").glob("*.yaml"):
        sweep = (yaml.safe_load(config.read_text()).get("profile") or {}).get("sweep")
        assert sweep is None or (Path(sweep).parent == SWEEPS and (REPO / sweep).is_file()), (config, sweep)


def write_result_folder(results: Path, record: dict | None) -> None:
    """A results folder as a finished run leaves it: every output of the report present and newer."""
    for name in ("REPORT.md", "tables/psnr_ssim.csv", "eval/bicubic/mini_test-x2.json"):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text("{}")
    if record is not None:
        (results / "data.json").write_text(json.dumps(record))


def test_own_data_goes_to_its_own_results_folder(tmp_path: Path) -> None:
    """README: `--config data_root=... data_source=local` must neither write into results/default/
    nor take its results as up to date."""
    workdir = copy_workflow(tmp_path / "workflow")
    write_result_folder(
        workdir / "results/default",
        {"data_source": "mini", "data_root": "data/mini", "datasets": {"mini_test": "test", "mini_train": "train"}},
    )
    own = tmp_path / "my photos"
    for split in ("train", "test"):
        (own / split).mkdir(parents=True)
    done = snakemake(workdir, "-n", "--config", f"data_root={own}", "data_source=local")
    assert done.returncode == 0, done.stdout + done.stderr
    counts = job_counts(done.stdout)
    assert counts["train"] == 2 and counts["eval_bicubic_with_images"] == 1 and counts["report"] == 1
    assert "results/local-my_photos/REPORT.md" in done.stdout
    assert "results/default/" not in done.stdout

    # An explicit name whose folder holds results on other data is refused, naming both.
    clash = snakemake(workdir, "-n", "--config", f"data_root={own}", "data_source=local", "name=default")
    assert clash.returncode != 0 and "Job stats" not in clash.stdout
    assert "results/default/ holds results computed on other data" in clash.stdout + clash.stderr
    assert "data_source 'local'" in clash.stdout + clash.stderr

    # A dataset mapped to another folder is other data too; a dataset added to the config is not.
    (workdir / "moved.yaml").write_text(yaml.safe_dump({"datasets": {"mini_test": {"path": "elsewhere"}}}))
    moved = snakemake(workdir, "-n", "--configfile", "moved.yaml", "--config", "name=default")
    assert moved.returncode != 0 and "datasets mini_test in other folders" in moved.stdout + moved.stderr
    (workdir / "added.yaml").write_text(yaml.safe_dump({"datasets": {"extra": {"path": "extra"}}}))
    added = snakemake(workdir, "-n", "--configfile", "added.yaml", "--config", "name=default")
    assert added.returncode == 0 and "results/default/" in added.stdout, added.stdout + added.stderr

    # A results folder without a record of its data cannot be trusted either.
    write_result_folder(workdir / "results/old", None)
    unknown = snakemake(workdir, "-n", "--config", "name=old")
    assert (
        unknown.returncode != 0
        and "results/old/ holds results but no record of their data" in unknown.stderr + unknown.stdout
    )


def test_slurm_profile_names_real_rules_and_parses(workdir: Path) -> None:
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="the profile's settings need the slurm extra (pip install -e '.[slurm]')",
    )
    profile = yaml.safe_load((workdir / "workflows/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    rules = set(snakemake(workdir, "--list-rules").stdout.split())
    verify = ("--configfile", "workflows/config/verify.yaml", filled_verify_urls(workdir))
    rules |= set(snakemake(workdir, "--list-rules", *verify).stdout.split())
    assert set(profile["set-resources"]) <= rules, set(profile["set-resources"]) - rules
    # Every setting of the profile is accepted by snakemake (the local executor stands in for SLURM,
    # whose plugin is an optional extra).
    done = snakemake(
        workdir,
        "-n",
        "-p",
        "--workflow-profile",
        "workflows/profiles/slurm",
        "--executor",
        "local",
        "--configfile",
        "workflows/config/paper.yaml",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    train = done.stdout.split("rule train:", 1)[1].split("rule ", 1)[0]
    assert "gpu=4" in train and "tasks_per_gpu=0" in train and "runtime=2880" in train
