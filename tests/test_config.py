"""Configuration: defaults, TOML round trip, clear errors for typos and wrong types."""
from __future__ import annotations

import json

import pytest

from keyfarm.config import Config
from keyfarm.errors import KeyfarmConfigError


def test_toml_overrides_defaults_and_serialises(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text('[weights]\npayment = 2\n[caps]\nip = 10\n[community]\nresolution = 0.3\n'
                    '[scoring]\nweights = { synchrony = 3.0 }\n')
    config = Config.from_toml(path)
    assert config.weights.payment == 2.0 and isinstance(config.weights.payment, float)
    assert config.caps.ip == 10 and config.community.resolution == 0.3
    assert config.scoring.weights["synchrony"] == 3.0
    assert config.scoring.weights["usage"] == Config.default().scoring.weights["usage"]   # others keep the fit
    assert config.weights.device == Config.default().weights.device
    json.dumps(config.to_dict())  # goes into run.json


def test_example_file_is_the_defaults():
    from pathlib import Path
    example = Path(__file__).parent.parent / "keyfarm.example.toml"
    assert Config.from_toml(example) == Config.default()


@pytest.mark.parametrize("text, message", [
    ("[weigths]\npayment = 1\n", "unknown configuration section [weigths]"),
    ("[weights]\npaymnt = 1\n", "unknown setting weights.paymnt"),
    ("[caps]\nip = 'ten'\n", "setting caps.ip must be int"),
    ("[caps]\nip = 1.5\n", "setting caps.ip must be int"),
    ("[scoring]\nweights = { nope = 1.0 }\n", "unknown key scoring.weights.nope"),
    ("[weights\n", "job.toml"),
])
def test_bad_configuration_names_the_key(tmp_path, text, message):
    path = tmp_path / "job.toml"
    path.write_text(text)
    with pytest.raises(KeyfarmConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        Config.from_toml(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(KeyfarmConfigError, match="not found"):
        Config.from_toml(tmp_path / "nope.toml")
