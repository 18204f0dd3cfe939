"""One source of truth for settings: a stage's frozen config dataclass, with the command-line
help, flag name and choices of each field in its metadata.

``option(...)`` declares a field that the command line exposes; ``add_arguments`` turns a
config class (nested configs included, flattened into one set of flags) into argparse
arguments; ``resolve`` builds the config with the precedence CLI > ``--config`` file
(TOML, stdlib ``tomllib``) > the dataclass defaults. Nothing here is typed twice: the
default, the type (from the annotation) and the help live on the field.

Standard library only (no torch): the CLI imports this for every command.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

_KEY = "vpr_cli"


@dataclass(frozen=True)
class Cli:
    """How one config field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name
    short: str | None = None  # e.g. "-k"
    metavar: str | tuple[str, ...] | None = None
    choices: tuple[object, ...] | None = None  # default: a Literal's values
    minimum: float | None = None  # numbers: inclusive bounds, checked while parsing
    maximum: float | None = None
    repeat: bool = False  # a tuple field given as a repeated flag (--images A --images B)
    negate: bool = False  # a bool field that defaults to True, switched off by this flag
    required: bool = False  # must be given (on the command line or in the config file)
    positional: bool = False  # a positional argument (optional: nargs "?")
    parse: Callable[[str], Any] | None = None  # a parser of its own (one token)


def option(
    default: Any = MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | Any = MISSING,
    **cli: Any,
) -> Any:
    """A config field shown on the command line (see :class:`Cli` for ``cli``)."""
    metadata = {_KEY: Cli(help=help, **cli)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def required(help: str, **cli: Any) -> Any:
    """A field with no default that the user must give (CLI or config file)."""
    return field(default=None, metadata={_KEY: Cli(help=help, required=True, **cli)})


def comma_list(text: str) -> tuple[str, ...]:
    """A ``parse=`` for a comma-separated list: 'a, b,c' -> ('a', 'b', 'c'); '' -> ()."""
    return tuple(n.strip() for n in text.split(",") if n.strip())


# ---- type handling --------------------------------------------------------------------


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for ``T | None``, else (tp, False)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _literal_values(tp: Any) -> tuple[object, ...] | None:
    return tuple(get_args(tp)) if get_origin(tp) is Literal else None


def _integer(text: str, low: float | None, high: float | None) -> int:
    """Decimal digits only (no 1e3, 0x10, 5_000 or spaces), then the range."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(_check_range(int(text), low, high))


def _real(text: str, low: float | None, high: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return float(_check_range(value, low, high))


def _check_range(value: float, low: float | None, high: float | None) -> float:
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bound = f"between {low:g} and {high:g}"
        elif low is not None:
            bound = f"at least {low:g}"
        else:
            bound = f"at most {high:g}"
        raise argparse.ArgumentTypeError(f"{value:g} is out of range: it must be {bound}")
    return value


def _parser_for(tp: Any, spec: Cli) -> Callable[[str], Any]:
    low, high = spec.minimum, spec.maximum
    if tp is int:
        return lambda s: _integer(s, low, high)
    if tp is float:
        return lambda s: _real(s, low, high)
    if tp is Path:
        return Path
    return str


def _argparse_kwargs(name: str, tp: Any, default: Any, spec: Cli) -> dict[str, Any]:
    inner, optional = _strip_optional(tp)
    kw: dict[str, Any] = {"help": _help(spec, default)}
    if spec.metavar is not None:
        kw["metavar"] = spec.metavar
    if spec.parse is not None:
        kw["type"] = spec.parse
        return kw
    if inner is bool:
        kw["action"] = "store_false" if spec.negate else "store_true"
        return kw
    literal = _literal_values(inner)
    origin = get_origin(inner)
    if origin is tuple:
        args = get_args(inner)
        item = args[0]
        kw["type"] = _parser_for(item, spec)
        if spec.repeat:
            kw["action"] = "append"
        elif len(args) == 2 and args[1] is Ellipsis:
            kw["nargs"] = "+"
        else:
            kw["nargs"] = len(args)
        item_literal = _literal_values(item)
        if item_literal:
            kw["choices"] = item_literal
            kw["type"] = str
    else:
        kw["type"] = _parser_for(inner, spec)
        if literal is not None:
            kw["choices"] = literal
            kw["type"] = type(literal[0]) if literal else str
    if spec.choices is not None:
        kw["choices"] = spec.choices
    del optional
    return kw


def _help(spec: Cli, default: Any) -> str:
    if spec.required or default is None or default == () or isinstance(default, bool):
        return spec.help
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{spec.help} (default: {shown})" if spec.help else f"default: {shown}"


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


# ---- argparse -------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, config: type[Any], path: str = "") -> None:
    """Add one argparse argument per ``option`` field of ``config`` (recursing into nested
    configs; their flags are flat). Defaults are not given to argparse (SUPPRESS): what the
    user did not type comes from the config file or the dataclass."""
    hints = get_type_hints(config)
    for f in fields(config):
        tp = hints[f.name]
        dest = f"{path}{f.name}"
        if is_dataclass(tp) and isinstance(tp, type):
            add_arguments(parser, tp, f"{dest}.")
            continue
        spec: Cli | None = f.metadata.get(_KEY)
        if spec is None:
            continue
        kw = _argparse_kwargs(f.name, tp, _default_of(f), spec)
        if spec.positional:
            # An absent optional positional takes its default (argparse checks it against
            # the choices, so it cannot be SUPPRESS); positionals are not read from a file.
            kw.pop("metavar", None)
            parser.add_argument(dest, metavar=f.name, nargs="?", default=_default_of(f), **kw)
            continue
        if (
            "metavar" not in kw
            and "choices" not in kw
            and kw.get("action")
            not in (
                "store_true",
                "store_false",
            )
        ):
            kw["metavar"] = f.name.upper()
        flags = [spec.flag or "--" + f.name.replace("_", "-")]
        if spec.short:
            flags.insert(0, spec.short)
        parser.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, **kw)


def cli_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """What the user typed, by config key (argparse only sets those: defaults SUPPRESSed)."""
    return dict(vars(namespace))


# ---- building a config ----------------------------------------------------------------


class SettingsError(ValueError):
    """A config file or a combination of settings that cannot make a config."""


def load_file(path: str | Path) -> dict[str, Any]:
    """A TOML config file as a (nested) dict."""
    p = Path(path)
    if not p.is_file():
        raise SettingsError(f"config file {p} does not exist")
    try:
        with p.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{p}: not valid TOML ({exc})") from None


def _convert(value: Any, tp: Any, key: str) -> Any:
    """A value from TOML or argparse as the field's type (lists -> tuples, str -> Path)."""
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise SettingsError(f"{key} cannot be empty")
    if get_origin(inner) is tuple:
        if not isinstance(value, list | tuple):
            raise SettingsError(f"{key} must be a list, got {value!r}")
        item = get_args(inner)[0]
        return tuple(_convert(v, item, key) for v in value)
    if inner is Path:
        return Path(value)
    if inner is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if inner in (int, float, str, bool) and not isinstance(value, inner):
        raise SettingsError(f"{key} must be {inner.__name__}, got {value!r}")
    literal = _literal_values(inner)
    if literal is not None and value not in literal:
        raise SettingsError(f"{key} must be one of {', '.join(map(str, literal))}, got {value!r}")
    return value


def build(
    config: type[Any],
    file_values: Mapping[str, Any] | None = None,
    cli: Mapping[str, Any] | None = None,
    path: str = "",
) -> Any:
    """``config`` from the dataclass defaults, then ``file_values`` (nested dict, field
    names), then ``cli`` (dotted keys): CLI > file > defaults. Unknown keys in the file
    and missing required values are refused with their names."""
    file_values = dict(file_values or {})
    cli = cli or {}
    hints = get_type_hints(config)
    names = {f.name for f in fields(config)}
    unknown = sorted(set(file_values) - names)
    if unknown:
        where = path.rstrip(".") or "the config file"
        raise SettingsError(f"unknown setting(s) in {where}: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields(config):
        tp = hints[f.name]
        key = f"{path}{f.name}"
        if is_dataclass(tp) and isinstance(tp, type):
            nested = file_values.get(f.name, {})
            if not isinstance(nested, dict):
                raise SettingsError(f"{key} must be a table of settings")
            kwargs[f.name] = build(tp, nested, cli, f"{key}.")
            continue
        if key in cli:
            kwargs[f.name] = _convert(cli[key], tp, key)
        elif f.name in file_values:
            kwargs[f.name] = _convert(file_values[f.name], tp, key)
        spec: Cli | None = f.metadata.get(_KEY)
        if spec is not None and spec.required and kwargs.get(f.name) is None:
            flag = spec.flag or "--" + f.name.replace("_", "-")
            raise SettingsError(f"{flag} is required (on the command line or as {key} in --config)")
    return config(**kwargs)


def resolve(config: type[Any], namespace: argparse.Namespace) -> Any:
    """The config of a parsed command line: its ``--config`` file, then its flags."""
    file_path = getattr(namespace, "config_file", None)
    file_values = load_file(file_path) if file_path else {}
    return build(config, file_values, cli_values(namespace))


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-safe dict of a config (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}
