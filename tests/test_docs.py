"""The README keeps up with the code: every option, dataset and model name is documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from spinalnet.data import DATASETS
from spinalnet.models import MODELS
from spinalnet.comparison.config import CompareConfig

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_option_is_documented():
    missing = [f.name for f in fields(CompareConfig) if f"`--{f.name.replace('_', '-')}`" not in README]
    assert not missing, f"options missing from README: {missing}"


def test_every_dataset_and_model_is_documented():
    assert not [n for n in DATASETS if f"`{n}`" not in README]
    assert not [n for n in MODELS if f"`{n}`" not in README]
    for prefixed in ("`folder:PATH`", "`npz:PATH`", "`tv:NAME`", "`timm:NAME`"):
        assert prefixed in README


def test_readme_has_the_two_setup_commands():
    assert "make demo" in README and "make test" in README


def test_readme_python_example_runs():
    start = README.index("```python\n") + len("```python\n")
    code = README[start : README.index("```", start)]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["y"].shape == (32, 10)


def test_every_config_command_in_the_readme_and_makefile_is_accepted():
    """`spinalnet CMD --config FILE` as the docs write it parses and validates (nothing is trained)."""
    import re

    from spinalnet.commands.cli import build_parser
    from spinalnet.regression.study import RegressConfig
    from spinalnet.commands.options import config_from_args
    from spinalnet.engine.config import TrainConfig

    root = Path(__file__).parent.parent
    text = README + (root / "Makefile").read_text()
    commands = set(re.findall(r"spinalnet (train|compare|regress) --config (configs/\S+\.yaml)", text))
    assert ("train", "configs/train-example.yaml") in commands and ("compare", "configs/demo.yaml") in commands
    classes = {"train": TrainConfig, "compare": CompareConfig, "regress": RegressConfig}
    for command, path in sorted(commands):
        args = build_parser().parse_args([command, "--config", str(root / path)])
        config_from_args(args, classes[command]).validate()
