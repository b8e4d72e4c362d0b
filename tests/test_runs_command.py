"""``python -m convnext_report runs`` and ``runs compare``, on a result store and a runs folder made here."""

from __future__ import annotations

import pytest

from convnext_report.cli import main
from convnext_report.config import TrainConfig
from convnext_report.report import commands, store


@pytest.fixture
def stored(book_copy, finished_run):
    """In a book of its own (no committed runs): two stored runs of chapter 06 (lr 1e-3 and 2e-3) and one finished run folder that is not stored."""
    keys = []
    for lr, held_out in ((1e-3, (0.30, 0.50)), (2e-3, (0.20, 0.40, 0.45))):
        config = TrainConfig(model="convnextv2_atto", lr=lr, epochs=3, seed=0,
                             extra={"chapter": "06_optimisers", "label": f"lr {lr:g}", "configuration": "full"})
        folder = finished_run(book_copy.parent / f"lr{lr:g}", config, held_out)
        key = store.run_key(config)
        store.put(folder, key=key, chapter="06_optimisers", label=f"lr {lr:g}", seed=0, smoke=False)
        keys.append(key)
    finished_run(store.runs_dir() / "mine" / "cli", TrainConfig(model="convnextv2_nano", seed=1), (0.1, 0.2),
                       device="cpu", seconds=30.0)
    return keys


def _run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_runs_lists_stored_runs_and_run_folders(stored, capsys):
    frame = commands.list_runs()
    assert list(frame["where"]) == ["local", "local", "run folder"]
    assert list(frame["key"][:2]) == stored and frame["label"].tolist()[:2] == ["lr 0.001", "lr 0.002"]
    assert frame["top1"].tolist()[:2] == pytest.approx([49.0, 44.0]) and frame["epochs_run"].tolist() == [2, 3, 2]
    status, out, _ = _run(capsys, "runs")
    header, first, second, third = out.splitlines()
    assert header.split() == ["key", "where", "chapter", "label", "seed", "configuration", "test", "top-1", "%",
                              "epochs", "minutes"]
    assert status == 0 and first.split()[:3] == [stored[0][:8], "local", "06_optimisers"]
    assert "49.00" in first and "1.50" in first  # top-1 and wall minutes
    assert third.split()[1:3] == ["run", "folder"] and "cli" in third  # epochs count from 1: 2 epochs


def test_runs_compare_shows_the_settings_that_differ_and_the_numbers(stored, capsys):
    status, out, _ = _run(capsys, "runs", "compare", stored[0][:6], stored[1][:6])
    assert status == 0
    settings, numbers = out.split("\n\n")
    assert settings.splitlines()[0] == "settings that differ:"
    differing = {line.split()[0] for line in settings.splitlines()[2:]}
    assert differing == {"lr", "extra"}
    rows = {line.split()[0]: line.split()[1:] for line in numbers.splitlines()[1:]}
    assert rows["top1"] == ["49.00", "44.00"] and rows["epochs_run"] == ["2", "3"]
    status, out, _ = _run(capsys, "runs", "compare", stored[0], "cli")  # a key and a run folder's name
    assert status == 0 and "model" in out


def test_runs_names_a_run_clearly_or_says_what_to_do(stored, capsys):
    status, _, err = _run(capsys, "runs", "compare", "zzz", stored[1])
    assert status == 1 and "'zzz' matches no finished run" in err and "convnext_report runs" in err
    status, _, err = _run(capsys, "runs", "compare", "", stored[1])  # an empty prefix matches every run
    assert status == 1 and "matches 3 runs" in err


def test_no_runs_says_so(book_copy, capsys):
    status, out, _ = _run(capsys, "runs")
    assert status == 0 and out.startswith("no finished runs")
