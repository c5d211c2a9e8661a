"""Typed configuration: profiles, --set coercion, config files, unknown keys."""

from __future__ import annotations

import pytest

import dlapps
from dlapps import config
from dlapps.errors import UserError

TASK = dlapps.get_task("tabular")


def test_layers_defaults_profile_file_and_sets(tmp_path):
    defaults = TASK.Config()
    smoke = config.resolve(TASK, "smoke")
    assert smoke.units == 32 and defaults.units == 128
    file = tmp_path / "best.toml"
    file.write_text(config.to_toml(TASK.config(units=48, dropout=0.25), header="tuned"))
    cfg = config.resolve(TASK, "smoke", {"dropout": "0.5"}, config_file=file)
    assert cfg.units == 48 and cfg.dropout == 0.5  # the file beats the profile, --set beats the file


@pytest.mark.parametrize("key, text, value", [
    ("units", "64", 64), ("dropout", "0.2", 0.2), ("batch_norm", "true", True),
    ("batch_norm", "0", False), ("data", "none", None), ("target", "price", "price"),
])
def test_set_values_are_typed(key, text, value):
    assert getattr(config.resolve(TASK, "smoke", {key: text}), key) == value


def test_data_implies_a_local_file_source():
    assert config.resolve(TASK, "full", {"data": "x.csv"}).source == "file"


@pytest.mark.parametrize("sets, message", [
    ({"unitz": "3"}, "unknown config key 'unitz'.*valid keys: .*units"),
    ({"units": "many"}, "expected a int"),
    ({"batch_norm": "maybe"}, "expected a bool"),
])
def test_bad_sets_are_rejected(sets, message):
    with pytest.raises(UserError, match=message):
        config.resolve(TASK, "smoke", sets)


def test_unknown_profile_and_malformed_set():
    with pytest.raises(UserError, match="unknown profile"):
        config.resolve(TASK, "huge")
    with pytest.raises(UserError, match="KEY=VALUE"):
        config.parse_sets(["units"])


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UserError, match="known tasks: .*tabular"):
        dlapps.get_task("nope")
