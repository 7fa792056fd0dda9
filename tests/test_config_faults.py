"""Settings that cannot be meant fail when the config is built: in under a second, before any
table is read, with a one-line error naming the setting and exit code 2 (issue 20)."""
from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.config import Config
from keyfarm.errors import KeyfarmConfigError
from keyfarm.scoring import ScoringConfig

BAD = [
    ("[scoring]\nbias = nan", "scoring.bias must be a finite number"),
    ("[scoring]\nweights = { payment = nan }", "scoring.weights.payment must be a finite number"),
    ("[weights]\nip4 = inf", "weights.ip4 must be a finite number"),
    ("[saturation]\nip = nan", "saturation.ip must be a finite number"),
    ("[scoring]\nthreshold = 2", "scoring.threshold must be within 0..1"),
    ("[scoring]\nthreshold = -1", "scoring.threshold must be within 0..1"),
    ("[scoring]\nmin_accounts = -3", "scoring.min_accounts must be >= 1"),
    ("[scoring]\nsync_bin_seconds = 0", "scoring.sync_bin_seconds must be >= 1"),
    ("[scoring]\nsignal_share = 5", "scoring.signal_share must be within"),
    ("[community]\nn_iterations = 0", "community.n_iterations must be -1"),
    ("[community]\nalgorithm = 'leidn'", "community.algorithm must be one of leiden"),
    ("[community]\nobjective = 'modularty'", "community.objective must be one of cpm"),
    ("[community]\nresolution = nan", "community.resolution must be a finite number"),
    ("[community]\nmin_edge_weight = -1", "community.min_edge_weight must be >= 0"),
    ("[prompt]\nnum_perm = 100000000", "prompt.num_perm must be <= 1,024"),
    ("[prompt]\nmax_chars = 1000000000000", "prompt.max_chars must be <= 1,000,000"),
    ("[prompt]\nseed = -1", "prompt.seed must be within"),
    ("[caps]\npayment = 1000000000000000000000", "caps.payment"),
    ("[timing]\nz_min = nan", "timing.z_min must be a finite number"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_a_setting_that_cannot_be_meant_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "job.toml"
    path.write_text(text + "\n")
    with pytest.raises(KeyfarmConfigError, match=message.replace("(", r"\(")):
        Config.from_toml(path)


@pytest.mark.parametrize("text,message", BAD[:4] + BAD[9:12] + BAD[14:15])
def test_link_stops_on_a_bad_setting_before_reading_any_table(tmp_path, monkeypatch, text, message):
    import keyfarm.pipeline

    def no_loading(*args, **kwargs):
        raise AssertionError("tables were read before the configuration was checked")

    monkeypatch.setattr(keyfarm.pipeline, "load_tables", no_loading)
    (tmp_path / "job.toml").write_text(text + "\n")
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "out"),
                                       "--config", str(tmp_path / "job.toml"), "--quiet"])
    assert time.perf_counter() - start < 1.0
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message.split(" must")[0] in lines[0]


def test_settings_built_in_python_are_checked_too():
    with pytest.raises(KeyfarmConfigError, match="scoring.bias must be a finite number"):
        Config(scoring=ScoringConfig(bias=float("nan")))
    with pytest.raises(KeyfarmConfigError, match="scoring.weights.usage must be a finite number"):
        ScoringConfig(weights={"usage": float("inf")})


def test_a_negative_seed_is_a_usage_error_not_a_traceback_after_the_heavy_stages(tmp_path):
    result = CliRunner().invoke(main, ["link", str(tmp_path), "--out", str(tmp_path / "out"), "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit)
