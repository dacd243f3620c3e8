"""Command-line options from the typed configs: one ``--option`` per field, YAML files, and their precedence.

The configs (:class:`~spinalnet.engine.config.TrainConfig` and the commands' own) stay plain data; this module
turns them into argparse options and builds them from parsed arguments, once per command.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import fields
from typing import Any, Literal, get_args, get_origin

from spinalnet.comparison.config import COMPARE_ONLY
from spinalnet.engine.config import TrainConfig, field_types, non_none, flag
from spinalnet.errors import UsageError
from spinalnet.files import read_yaml


def add_config_arguments(parser: argparse.ArgumentParser, cls: type = TrainConfig, skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per config field, read as text and checked with YAML values by ``from_dict``.

    Defaults stay ``None`` here, so YAML and dataclass defaults apply; ``--help`` shows the
    dataclass default once (or the help text's own "default: ..." phrase).
    """
    hints = field_types(cls)
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (command-line options win)")
    for f in fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        if "default" not in help_text and default not in (None, {}):
            help_text += f" (default: {','.join(map(str, default)) if isinstance(default, list) else default})"
        literal = next((t for t in non_none(tp) if get_origin(t) is Literal), None)
        if bool in non_none(tp):
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.metadata.get("parse") is not None:  # kept as text: from_dict parses it, as it parses YAML strings
            parser.add_argument(flag(f.name), default=None, metavar="SPEC", help=help_text)
        elif get_origin(non_none(tp)[0]) is list:
            parser.add_argument(flag(f.name), type=_comma_list, default=None, metavar="A,B,...", help=help_text)
        else:
            metavar = "{" + ",".join(get_args(literal)) + "}" if literal else f.name.upper()
            parser.add_argument(flag(f.name), default=None, metavar=metavar, help=help_text)


def _comma_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def config_from_args(args: argparse.Namespace, cls: type = TrainConfig, extra: dict[str, Any] | None = None):
    """Dataclass defaults < YAML file < command line, all through one typed check (the command's entry point,
    ``train``, ``compare`` or ``regress``, then validates it once).

    ``train --config`` accepts a compare config: its compare-only keys (``seeds``) are dropped with
    a one-line note, so the README's demo config trains one model.
    """
    values: dict[str, Any] = dict(extra or {})
    if getattr(args, "config", None) is not None and not args.config.strip():
        raise UsageError("--config needs a YAML file, got ''")
    if getattr(args, "config", None):
        data = read_yaml(args.config)
        if cls is TrainConfig:
            dropped = [k for k in data if str(k).replace("-", "_") in COMPARE_ONLY]
            if dropped:
                print(f"spinalnet: note: {args.config}: {', '.join(dropped)} only applies to compare; "
                      "train ignores it", file=sys.stderr)
                data = {k: v for k, v in data.items() if k not in dropped}
        values.update(data)
    names = {f.name for f in fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return cls.from_dict(values)


def add_config_command(sub: argparse._SubParsersAction, name: str, config_cls: type, run, help: str,
                       description: str, skip: tuple[str, ...] = ()) -> None:
    """A command whose options are the fields of ``config_cls`` (also readable from --config YAML)."""
    p = sub.add_parser(name, help=help, description=description)
    add_config_arguments(p, config_cls, skip=skip)
    p.set_defaults(func=lambda args: run(config_from_args(args, config_cls)))
