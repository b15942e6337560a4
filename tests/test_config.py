from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_params, params_from_dict

REPO = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_shipped_params_load_into_typed_config():
    p = load_params(REPO / "params.yaml")
    assert p.corpus.name == "sample"
    mel = p.section("mel")
    assert mel.variant == "paper" and mel.active.n_mels == 80 and mel.code.n_mels == 128
    assert p.section("spectrogram").n_fft == 256
    assert {s.name for s in p.folds.schemes} >= {"actor_kfold", "random_kfold", "actor_holdout"}


def test_unknown_key_names_key_and_allowed_keys():
    raw = _raw()
    raw["runner"]["n_job"] = 3
    with pytest.raises(ConfigError, match=r"runner\.n_job.*allowed keys.*n_jobs"):
        params_from_dict(raw)


def test_bad_choice_lists_allowed_values():
    raw = _raw()
    raw["mel"]["variant"] = "papers"
    with pytest.raises(ConfigError, match=r"mel\.variant.*'papers'.*'paper', 'code'"):
        params_from_dict(raw)


def test_wrong_type_and_nested_keys_are_named():
    raw = _raw()
    raw["mel"]["paper"]["n_mels"] = "eighty"
    with pytest.raises(ConfigError, match=r"mel\.paper\.n_mels: expected an integer"):
        params_from_dict(raw)
    raw = _raw()
    raw["folds"]["schemes"][0]["kind"] = "kfold"
    with pytest.raises(ConfigError, match=r"folds\.schemes\[0\]\.kind.*group_kfold"):
        params_from_dict(raw)


def test_unknown_section_and_value_checks():
    raw = _raw()
    raw["mell"] = {}
    with pytest.raises(ConfigError, match="unknown section 'mell'"):
        params_from_dict(raw)
    raw = _raw()
    raw["spectrogram"]["n_fft"] = 0
    with pytest.raises(ConfigError, match=r"spectrogram\.n_fft: must be > 0"):
        params_from_dict(raw)


def test_bool_is_not_an_int():
    raw = _raw()
    raw["runner"]["n_jobs"] = True
    with pytest.raises(ConfigError, match="runner.n_jobs"):
        params_from_dict(raw)
