import pytest

from panflow import ConfigError, build_config
from panflow.config import RunConfig, apply_overrides, config_from_dict


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match="Did you mean 'train.lr'"):
        apply_overrides(RunConfig(), ["train.lrr=0.1"])
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        apply_overrides(RunConfig(), {"trian.steps": 3})


def test_wrong_type_is_one_clear_line():
    with pytest.raises(ConfigError, match="'train.steps' expects int"):
        apply_overrides(RunConfig(), ["train.steps=many"])
    with pytest.raises(ConfigError, match="expects bool"):
        apply_overrides(RunConfig(), {"train.compile": "yes"})
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(RunConfig(), ["train.steps"])


def test_values_are_parsed_as_toml():
    cfg = apply_overrides(RunConfig(), ["train.lr=3e-4", "train.compile=true", "model.options.mults=[1, 2, 2]",
                                        'sample.solver="heun"', "sample.solver=rk4"])
    assert cfg.train.lr == 3e-4 and cfg.train.compile is True
    assert cfg.model.options["mults"] == [1, 2, 2] and cfg.sample.solver == "rk4"


def test_precedence_preset_file_flags_overrides(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text('[train]\nsteps = 7\nlr = 0.5\n[data]\ndataset = "moons"\n')
    cfg = build_config("toy2d", "smoke", str(f), ["train.lr=0.25"], backbone="mlp")
    assert cfg.train.steps == 7  # file beats preset (30)
    assert cfg.train.lr == 0.25  # --set beats file
    assert cfg.train.batch_size == 128  # preset value kept
    assert cfg.data.dataset == "moons" and cfg.model.backbone == "mlp"
    again = config_from_dict(cfg.to_dict())
    assert again == cfg


def test_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config("toy2d", "smoke", str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config("toy2d", "smoke", str(bad))


def test_overrides_never_mutate_a_domains_presets():
    from panflow import get_registry

    dom = get_registry().domain("text")
    before = repr(dom.presets["small"])
    cfg = build_config("text", "small", overrides=['data.options.tokenizer="bpe"'])
    assert cfg.data.options["tokenizer"] == "bpe"
    assert repr(dom.presets["small"]) == before
    assert "tokenizer" not in build_config("text", "small").data.options
