"""The command line is generated from the stages' config dataclasses and keeps the flags it
had before (tests/fixtures/cli_flags.json: every flag, default and choice of the
hand-written parser it replaced); --config files, precedence and strict values."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from vpr_embedded import settings
from vpr_embedded.cli import COMMANDS, _load, build_parser, main

FIXTURE = Path(__file__).parent / "fixtures" / "cli_flags.json"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _field_defaults(config: type[Any], path: str = "") -> dict[str, Any]:
    """dest -> (default, required) of every option field, nested configs included."""
    out: dict[str, Any] = {}
    hints = get_type_hints(config)
    for f in fields(config):
        tp = hints[f.name]
        if is_dataclass(tp) and isinstance(tp, type):
            out.update(_field_defaults(tp, f"{path}{f.name}."))
            continue
        spec = f.metadata.get("vpr_cli")
        if spec is not None:
            out[f"{path}{f.name}"] = (settings._default_of(f), spec.required)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return str(v) if isinstance(v, Path) else v


# Commands added after the generated parser replaced the hand-written one, so absent from
# the fixture (prune-sweep, in the fixture, moved to benchmarks/ and is tested there).
NEW_COMMANDS = ("train", "zoo-pack", "kernels")
OLD_COMMANDS = [c.name for c in COMMANDS if c.name not in NEW_COMMANDS]


@pytest.mark.parametrize("command", OLD_COMMANDS)
def test_every_flag_of_the_old_parser_is_kept(command: str) -> None:
    old = json.loads(FIXTURE.read_text())[command]
    new = _subparsers(build_parser())[command]
    spec = next(c for c in COMMANDS if c.name == command)
    defaults = _field_defaults(_load(spec.config))
    actions = {a.option_strings[0] if a.option_strings else f"<{a.dest}>": a for a in new._actions}
    for flag, was in old.items():
        first = flag.split("/")[0]
        assert first in actions, f"{command} {flag} is gone"
        a = actions[first]
        default, required = defaults[a.dest]
        if isinstance(a, argparse._StoreFalseAction):  # --no-eager: the field is its opposite
            default = not default
        assert _plain(default) == was["default"] or (was["required"] and default is None), flag
        assert required == was["required"], flag
        # Every old choice is still accepted (new ones may be added: --storage pq4).
        if was["choices"] is None:
            assert not a.choices, flag
        else:
            assert a.choices and set(was["choices"]) <= set(a.choices), flag
        assert a.nargs == was["nargs"] or (was["nargs"] is None and a.nargs is None), flag


def test_prune_sweep_keeps_its_flags_in_the_benchmark() -> None:
    import bench_pruning

    old = json.loads(FIXTURE.read_text())["prune-sweep"]
    actions = {a.option_strings[0]: a for a in bench_pruning.build_parser()._actions}
    assert set(old) <= set(actions), set(old) - set(actions)


def test_a_config_file_sits_between_the_defaults_and_the_flags(tmp_path: Path) -> None:
    from vpr_embedded.prune.config import PruneJob

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        'model = "efficientnet_lite0-gem"\nout = "runs/x.pt"\n'
        "[prune]\nbackbone_ratio = 0.35\nsteps = 4\n[prune.recovery]\nepochs = 8\nlr = 1e-4\n"
    )
    parser = build_parser(["prune"])
    args = parser.parse_args(["prune", "--config", str(recipe), "--epochs", "2"])
    job = settings.resolve(PruneJob, args)
    assert job.model == "efficientnet_lite0-gem" and job.out == Path("runs/x.pt")
    assert job.prune.backbone_ratio == 0.35 and job.prune.steps == 4  # file
    assert job.prune.recovery.epochs == 2  # flag over file
    assert job.prune.recovery.lr == 1e-4 and job.prune.recovery.batch_size == 16  # file, default
    recipe.write_text('model = "m"\nout = "o.pt"\n[prune]\nbackbone_ration = 0.3\n')
    with pytest.raises(settings.SettingsError, match=r"unknown setting.*backbone_ration"):
        settings.resolve(PruneJob, parser.parse_args(["prune", "--config", str(recipe)]))


def test_the_checked_in_recipes_load(capsys: pytest.CaptureFixture[str]) -> None:
    from vpr_embedded.prune.config import PruneJob

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("prune-*.toml"))
    assert recipes, "no recipe files"
    for recipe in recipes:
        job = settings.build(PruneJob, settings.load_file(recipe))
        assert job.prune.steps >= 1 and job.prune.recover_images, recipe.name


def test_bad_config_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = [1, 2")
    assert main(["demo", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    bad.write_text('places = "many"\n')
    assert main(["demo", "--config", str(bad)]) == 2
    assert "places must be int" in capsys.readouterr().err
    assert main(["demo", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_help_comes_from_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["localize", "--help"])
    out = capsys.readouterr().out
    assert "--k K" in out and "places per image (default: 5)" in out
    assert "--sequence L" in out and "match over L frames" in out
