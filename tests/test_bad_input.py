"""Bad input through the command line and YAML: one ``spinalnet: error:`` line, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spinalnet.commands.cli import main
from spinalnet.engine.config import TrainConfig
from spinalnet.regression.config import RegressConfig

RUN = [sys.executable, "-m", "spinalnet"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("spinalnet: note:")]
    assert len(lines) == 1 and lines[0].startswith("spinalnet: error: ") and "Traceback" not in err, err
    return lines[0]


YAML_CASES = [
    ("optimizer: adm", "unknown optimizer 'adm' (did you mean 'adam'?); known: adam, adamw, sgd"),
    ("schedule: cosin", "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    ('freeze_backbone: "no"', "--freeze-backbone must be true or false, got 'no'"),
    ("epochs: three", "--epochs must be a whole number, got 'three'"),
    ("batch_size: 64.5", "--batch-size must be a whole number, got 64.5"),
    ("epochs: [1, 2]", "--epochs must be a whole number, got [1, 2]"),
    ("lr: [0.1]", "--lr must be a number, got [0.1]"),
    ("lr: true", "--lr must be a number, got True"),
    ("optimiser: sgd", "unknown option 'optimiser' (did you mean 'optimizer'?)"),
    ("momentum: -1", "--momentum must be >= 0, got -1.0"),
    ("weight_decay: -0.1", "--weight-decay must be >= 0, got -0.1"),
    ("gamma: 0", "--gamma must be > 0, got 0.0"),
    ("seed: -1", "--seed must be >= 0, got -1"),
    ("head: spinel", "unknown head 'spinel' (did you mean 'spinal'?)"),
    ("categories: cat", "--categories must be a list of strings, got 'cat'"),
    ("lr: .inf", "--lr must be a finite number, got inf"),
]


@pytest.mark.parametrize("line,message", YAML_CASES)
def test_yaml_values_are_type_and_choice_checked(line, message, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(line + "\n")
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"spinalnet: error: {message}")
    assert not (tmp_path / "out").exists()


CLI_CASES = [
    (["--optimizer", "adm"], "unknown optimizer 'adm' (did you mean 'adam'?)"),
    (["--epochs", "three"], "--epochs must be a whole number, got 'three'"),
    (["--momentum", "-1"], "--momentum must be >= 0, got -1.0"),
    (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
    (["--schedule", "step", "--step-size", "0"], "--step-size must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--devices", "0"], "--devices must be auto or a whole number >= 1, got '0'"),
    (["--devices", "abc"], "--devices must be auto or a whole number >= 1, got 'abc'"),
    (["--accelerator", "tpu"], "unknown accelerator 'tpu' (did you mean 'gpu'?)"),
    (["--accelerator", "cpu", "--devices", "99"], f"--devices 99 would start 99 CPU processes; this machine has "
                                                 f"{os.cpu_count()} cores, so at most --devices {os.cpu_count()}"),
    (["--resume", "--force"], "--resume and --force contradict each other"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--momentum", "inf"], "--momentum must be a finite number, got inf"),
]


@pytest.mark.parametrize("args,message", CLI_CASES)
def test_command_line_values_get_the_same_checks(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output would be runs/...: nothing may appear
    assert main(["train", *args]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"spinalnet: error: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command,args,message", [
    ("train", ["--num-layers", "1000000"], "--num-layers must be <= 10000, got 1000000"),
    ("compare", ["--seeds", "100000000"], "--seeds must be <= 10000, got 100000000"),
    ("regress", ["--samples", "1000000000"], "--samples must be <= 10000000, got 1000000000"),
    ("regress", ["--seeds", "100000000"], "--seeds must be <= 10000, got 100000000"),
    ("regress", ["--num-layers", "1000000"], "--num-layers must be <= 10000, got 1000000"),
])
def test_sizes_that_would_fill_memory_before_training_are_refused(command, args, message, tmp_path, capsys,
                                                                   monkeypatch):
    """A million hidden layers, a hundred million seeds or a billion samples took all 24 GB of this machine
    (the OOM killer, or a MemoryError traceback after the run directory was written)."""
    monkeypatch.chdir(tmp_path)
    assert main([command, *args]) == 2
    assert one_error_line(capsys.readouterr().err) == f"spinalnet: error: {message}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_gpu_without_gpu_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--accelerator", "gpu"]) == 2
    assert "no CUDA GPU is visible" in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_more_gpus_than_present_are_refused(monkeypatch):
    from spinalnet.errors import UsageError
    from spinalnet.engine import machine

    monkeypatch.setattr(machine, "gpu_count", lambda: 2)
    with pytest.raises(UsageError, match=r"--devices 3: this machine has 2 GPU\(s\)"):
        machine.check_machine("gpu", "3", "auto")
    assert machine.check_machine("gpu", "2", "auto") == 2


def test_numbers_may_be_strings_in_yaml_as_on_the_command_line(tmp_path):
    # PyYAML reads 1e-3 as a string; the command line gives strings too: both mean 0.001
    assert TrainConfig.from_dict({"lr": "1e-3", "epochs": "3"}).lr == 0.001
    assert TrainConfig.from_dict({"epochs": "3"}).epochs == 3
    assert RegressConfig.from_dict({"fc_hidden": ["8", 4]}).fc_hidden == [8, 4]
    # and a name that is a number: YAML's ``precision: 16`` was refused as "must be one of ..., 16, ..., got 16"
    assert TrainConfig.from_dict({"precision": 16}).precision == "16"
    assert TrainConfig.from_dict({"precision": 32}).precision == "32"


def test_regress_targets_match_the_config_choices():
    from typing import get_args, get_type_hints

    from spinalnet.regression.study import TARGETS

    assert set(get_args(get_type_hints(RegressConfig)["target"])) == {"all", *TARGETS}


def test_argparse_errors_are_one_line_too():
    done = subprocess.run([*RUN, "train", "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == \
        "spinalnet: error: unrecognized arguments: --no-such-option (see spinalnet train --help)"


def test_help_shows_each_default_once(capsys):
    assert main(["train", "--help"]) == 0  # argparse's exit is main()'s return code
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert text.count("(default: 0.9)") == 1 and "default: None" not in text
    assert "(default: the dataset's) (default" not in text


def test_train_accepts_a_compare_config_with_a_note(tmp_path, capsys):
    config = tmp_path / "demo.yaml"
    config.write_text("seeds: 3\nepochs: 0\n")  # epochs 0: stops at validation, after the note
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"spinalnet: note: {config}: seeds only applies to compare; train ignores it" in err
    assert one_error_line(err) == "spinalnet: error: --epochs must be >= 1, got 0"


def test_regress_checks_its_output_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["regress", "--target", "sum", "--epochs", "1000000", "--output", str(blocker)]) == 2
    assert "exists and is not a directory" in one_error_line(capsys.readouterr().err)
    assert blocker.read_text() == "x"


def test_a_head_too_big_to_allocate_is_one_line_and_nothing_written(npz_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["train", "--dataset", f"npz:{npz_file}", "--layer-width", str(10**12), "--output", str(out)]
    assert main(args) == 2
    assert "does not fit in memory" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_checkpoint_with_a_misshapen_tensor_names_it(npz_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{npz_file}", "--epochs", "1", "--limit-batches", "2",
                 "--no-progress", "--output", str(out)]) == 0
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", weights_only=False)
    key = next(k for k in checkpoint["state_dict"] if k.endswith("weight"))
    checkpoint["state_dict"][key] = torch.zeros(3)
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "bad.ckpt")]) == 2
    assert f"size mismatch for {key}" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("command", ["train", "regress"])
def test_a_npy_file_named_npz_is_one_line_and_nothing_written(command, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "plain.npy", np.zeros((4, 28, 28), dtype=np.uint8))
    (tmp_path / "plain.npy").rename(tmp_path / "arrays.npz")
    option = "--dataset" if command == "train" else "--data"
    out = tmp_path / "out"
    assert main([command, option, f"npz:{tmp_path / 'arrays.npz'}", "--output", str(out)]) == 2
    assert "arrays.npz: not a readable .npz file" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_relative_npz_path_is_stored_absolute_so_eval_works_from_elsewhere(npz_file, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(npz_file.parent)
    out = tmp_path / "run"
    assert main(["train", "--dataset", f"npz:{npz_file.name}", "--epochs", "1", "--limit-batches", "2",
                 "--no-progress", "--output", str(out)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / npz_file.name).write_bytes(b"another file of the same name")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoints" / "best.ckpt")]) == 0
    assert capsys.readouterr().out.startswith(f"npz:{npz_file} test accuracy")


@pytest.mark.parametrize("make_args,message", [
    (lambda d: ["train", "--dataset", f"npz:{d}"], "npz file {d} is a directory, not a file"),
    (lambda d: ["train", "--dataset", f"folder:{d / 'f.npz'}"], "folder dataset {d}/f.npz is a file, not a directory"),
    (lambda d: ["train", "--model", "tv:resnet18", "--pretrained", str(d)],
     "pretrained weights file {d} is a directory, not a file"),
    (lambda d: ["regress", "--data", f"csv:{d}", "--y-column", "a"], "CSV file {d} is a directory, not a file"),
    (lambda d: ["train", "--config", ""], "--config needs a YAML file, got ''"),
    (lambda d: ["regress", "--data", ""], "--data needs csv:PATH or npz:PATH, got ''"),
])
def test_a_directory_or_an_empty_path_is_named_as_such(make_args, message, tmp_path, capsys, monkeypatch):
    """These said "does not exist" of an existing directory, or were silently ignored (an empty --config)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.npz").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert main([*make_args(data), "--epochs", "1"]) == 2
    assert one_error_line(capsys.readouterr().err) == f"spinalnet: error: {message.format(d=data)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_an_output_inside_the_image_folder_it_reads_is_refused(image_folder, tmp_path, capsys):
    """Its plots would become images of a class of their own the next time the folder is read."""
    flat = tmp_path / "flat"  # one folder of class sub-folders: every sub-folder is read
    (flat / "a").mkdir(parents=True)
    for out, folder, read in ((image_folder / "train" / "results", image_folder, image_folder / "train"),
                              (flat / "results", flat, flat)):
        assert main(["compare", "--dataset", f"folder:{folder}", "--output", str(out), "--epochs", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"spinalnet: error: --output {out} is inside the image folder {read.resolve()}: its files "
                       "would be read as images (a class of their own) the next time the folder is used; choose an "
                       "--output outside it")
        assert not out.exists()
    # beside train/ and test/, a folder is not read: allowed
    assert main(["compare", "--dataset", f"folder:{image_folder}", "--output", str(image_folder / "results"),
                 "--epochs", "0"]) == 2
    assert "inside the image folder" not in capsys.readouterr().err
