"""A run that starts over over earlier outputs (issue 21.5): files git holds are replaced in place, the rest
is moved to `replaced/<UTC time>/` (suite.files.clear_for_rerun), for training run folders and profile sweeps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from suite.files import REPLACED, clear_for_rerun, files_git_holds, take_committed_name
from suite.profiling.sweep import prepare_out
from suite.train.monitor import Scalars
from suite.train.rundir import restore_point


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=suite tests", "-c", "user.email=tests@example.invalid", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def files_under(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): path.read_text() for path in sorted(folder.rglob("*")) if path.is_file()}


def untracked(repo: Path) -> list[str]:
    lines = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    return [line[3:] for line in lines if line.startswith("??")]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git work tree with one commit: results/a (unchanged later), results/b, results/sub/{c,d}."""
    git(tmp_path, "init", "-q")
    write(tmp_path / ".gitignore", "*.ckpt\n")
    for name in ("a", "b", "sub/c", "sub/d", "gone"):
        write(tmp_path / "results" / name, f"committed {name}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "results")
    return tmp_path


def test_git_holds_only_committed_unchanged_files(repo: Path) -> None:
    results = repo / "results"
    write(results / "b", "edited\n")
    write(results / "staged", "added, not committed\n")
    git(repo, "add", "results/staged")
    write(results / "new", "untracked\n")
    write(results / "model.ckpt", "ignored\n")
    (results / "gone").unlink()
    assert files_git_holds(results) == {Path("a"), Path("sub/c"), Path("sub/d")}
    assert files_git_holds(results / "sub") == {Path("c"), Path("d")}  # relative to the folder asked about


def test_nothing_is_held_outside_a_work_tree_or_without_git(repo: Path, tmp_path_factory, monkeypatch) -> None:
    outside = tmp_path_factory.mktemp("no-repo")
    write(outside / "a", "a\n")
    assert files_git_holds(outside) == set()
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("no-git")))  # no git executable to be found
    assert files_git_holds(repo / "results") == set()


def test_clear_deletes_what_git_holds_and_moves_the_rest_aside(repo: Path) -> None:
    results = repo / "results"
    write(results / "b", "edited\n")
    write(results / "sub" / "model.ckpt", "ignored, never committed\n")
    write(results / "keep", "not named: left alone\n")
    aside = clear_for_rerun(results, ["a", "b", "sub", "missing"])
    assert aside is not None and aside.parent == results / REPLACED
    assert files_under(aside) == {"b": "edited\n", "sub/model.ckpt": "ignored, never committed\n"}
    assert files_under(results) == {
        "gone": "committed gone\n",
        "keep": "not named: left alone\n",
        **{f"{REPLACED}/{aside.name}/{k}": v for k, v in files_under(aside).items()},
    }
    # What was deleted is in git: checkout brings it back unchanged.
    git(repo, "checkout", "--", "results")
    assert (results / "a").read_text() == "committed a\n" and (results / "sub" / "c").read_text() == "committed sub/c\n"


def test_clear_of_a_committed_folder_moves_nothing(repo: Path) -> None:
    assert clear_for_rerun(repo / "results", ["a", "sub"]) is None
    assert not (repo / "results" / REPLACED).exists() and not (repo / "results" / "sub").exists()
    assert untracked(repo) == []


def test_clear_without_git_moves_everything_aside(repo: Path, tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("no-git")))
    aside = clear_for_rerun(repo / "results", ["a", "sub"])
    assert files_under(aside) == {"a": "committed a\n", "sub/c": "committed sub/c\n", "sub/d": "committed sub/d\n"}


def fake_run(out: Path) -> dict:
    """A finished-looking run folder (its checkpoints unusable, so resume-or-restart starts over) -> its recipe."""
    for name in ("final.pt", "summary.json", "train_log.csv", "tb/events.out.tfevents.1.host.1.0"):
        write(out / name, f"earlier {name}\n")
    write(out / "checkpoints" / "iter_0000004.pt", "not a checkpoint\n")
    return {"name": "run", "out_dir": str(out), "schedule": {"iterations": 4}}


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "uncommitted"])
def test_training_afresh_replaces_a_committed_run_in_place(tmp_path: Path, committed: bool) -> None:
    git(tmp_path, "init", "-q")
    write(tmp_path / ".gitignore", "*.pt\n!final.pt\n")  # as the repository: checkpoints are never committed
    out = tmp_path / "results" / "run"
    recipe = fake_run(out)
    if committed:
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-q", "-m", "run")
    notes = []
    assert restore_point(recipe, "resume-or-restart", 8, notes.append) == (None, None)
    (aside,) = (out / REPLACED).iterdir()
    if committed:  # git holds all but the ignored checkpoint: only that is moved aside, nothing untracked
        assert files_under(aside) == {"checkpoints/iter_0000004.pt": "not a checkpoint\n"}
        assert untracked(tmp_path) == []
    else:
        assert set(files_under(aside)) == {
            "final.pt",
            "summary.json",
            "train_log.csv",
            "checkpoints/iter_0000004.pt",
            "tb/events.out.tfevents.1.host.1.0",
        }
    assert sorted(path.name for path in out.iterdir()) == [REPLACED]
    assert "moved the earlier run (all but the files git holds)" in notes[-1]


def test_a_fresh_runs_events_take_the_committed_name_and_a_resumed_attempts_do_not(repo: Path) -> None:
    tb = repo / "results" / "tb"
    committed = write(tb / "events.out.tfevents.1000000000.host.1.0", "the committed run's events\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "events")
    committed.unlink()  # cleared for the re-run: git holds it
    fresh = Scalars(tb)
    fresh.add(1, train__loss=0.5)
    fresh.close()
    assert [path.name for path in tb.iterdir()] == [committed.name]
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        f" M {committed.relative_to(repo)}"
    ]
    resumed = Scalars(tb, resume_at=1)
    resumed.add(2, train__loss=0.4)
    resumed.close()
    names = sorted(path.name for path in tb.iterdir())
    assert len(names) == 2 and names[0] == committed.name  # the resumed attempt's file sorts after


def fake_sweep(out: Path) -> None:
    write(out / "sweep.json", json.dumps({"invocations": [{"finished": "then", "tasks_left": 0}]}))
    for name in ("profile.csv", "points/p1.json", "traces/p1/host_1.1.pt.trace.json.gz", "logs/p1.log"):
        write(out / name, f"earlier {name}\n")


def test_a_forced_sweep_rerun_replaces_committed_results_in_place(repo: Path) -> None:
    out = repo / "results" / "profile"
    fake_sweep(out)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sweep")
    write(out / "points" / "p2.json", "measured after the commit\n")
    logged = []
    prepare_out(out, resume=True, fresh=False, log=logged.append)
    (aside,) = (out / REPLACED).iterdir()
    assert files_under(aside) == {"points/p2.json": "measured after the commit\n"}  # only what git lacks
    assert untracked(repo) == [f"results/profile/{REPLACED}/{aside.name}/points/p2.json"]
    assert sorted(path.name for path in out.iterdir()) == [REPLACED]
    assert f"old results in {aside}" in logged[-1]


def test_a_forced_sweep_rerun_outside_git_moves_the_old_sweep_aside(tmp_path: Path) -> None:
    out = tmp_path / "profile"
    fake_sweep(out)
    before = files_under(out)
    logged = []
    prepare_out(out, resume=True, fresh=False, log=logged.append)
    (aside,) = (out / REPLACED).iterdir()
    assert files_under(aside) == before


def test_a_reprofiled_points_trace_takes_the_committed_name(repo: Path) -> None:
    """run_profiler's renaming: the profiler's new trace takes the name of the committed trace it replaces."""
    from suite.profiling.kernels import is_trace_file

    point = repo / "results" / "traces" / "rib-train-w8"
    write(point / "host_1.100.pt.trace.json.gz", "committed trace\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sweep")
    (point / "host_1.100.pt.trace.json.gz").unlink()  # clear_traces, before the new measurement
    write(point / "host_2.200.pt.trace.json.gz", "new trace\n")
    take_committed_name(point, {"host_2.200.pt.trace.json.gz"}, is_trace_file)
    assert files_under(point) == {"host_1.100.pt.trace.json.gz": "new trace\n"} and untracked(repo) == []
    # Outside HEAD's knowledge (a new point), the profiler's own name stays.
    write(repo / "results" / "traces" / "new" / "host_3.300.pt.trace.json.gz", "x\n")
    take_committed_name(repo / "results" / "traces" / "new", {"host_3.300.pt.trace.json.gz"}, is_trace_file)
    assert (repo / "results" / "traces" / "new" / "host_3.300.pt.trace.json.gz").exists()


def test_a_failed_move_puts_the_earlier_run_back_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside git every entry moves aside; the third move fails: the first two come back, no empty
    replaced/<time>/ stays, and the error names the entry that could not move."""
    run = tmp_path / "run"
    for name in ("a", "b", "c", "d"):
        write(run / name, f"earlier {name}\n")
    before = files_under(run)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self.name == "c" and REPLACED in Path(target).parts:
            raise OSError(18, "Invalid cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(
        OSError, match=rf"could not move {run / 'c'} to .*{REPLACED}/.*/c \(Invalid cross-device link\)"
    ):
        clear_for_rerun(run, ["a", "b", "c", "d"])
    assert files_under(run) == before and not (run / REPLACED).exists()
