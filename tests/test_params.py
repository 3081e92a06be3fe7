"""params.yaml is the one home of defaults; Config classes are generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from assets.params import SECTIONS, ParamsError, config_class, load_params, section
from tests.conftest import PROJECT_ROOT


def test_every_section_is_present() -> None:
    params = load_params(PROJECT_ROOT)
    assert set(SECTIONS) <= set(params)


def test_config_class_mirrors_the_section() -> None:
    cls = config_class("split", dg.Config)
    config = cls()
    assert config.model_dump() == section("split")
    overridden = cls(validation_fraction=0.2, test_start="2025-06-01")
    assert overridden.validation_fraction == 0.2
    assert overridden.test_start == "2025-06-01"


def test_launchpad_override_type_is_checked() -> None:
    cls = config_class("train", dg.Config)
    with pytest.raises(Exception, match="lora_r"):
        cls(lora_r="eight")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: [unclosed", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("data: {}\n", "section 'clean' is missing"),
    ],
)
def test_bad_params_file_is_explained(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(tmp_path)


def test_missing_params_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path)


# --- ordinary YAML that PyYAML (YAML 1.1) reads in surprising ways ---------------------------------------


def params_root(tmp_path: Path, old: str, new: str) -> Path:
    """A fresh root (load_params is cached per root) holding the project's params.yaml with one edit."""
    text = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in params.yaml any more; update the test"
    root = tmp_path / "root"
    root.mkdir()
    (root / "params.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "line",
    [
        "validation_start: 2025-07-01",
        "validation_start: 2025-07-01 10:30:00",
        "validation_start: 2025-07-01T10:30:00Z",
        "validation_start: 2025-07-01T10:30:00+02:00",
    ],
)
def test_an_unquoted_date_is_refused_with_the_line_and_the_fix(tmp_path: Path, line: str) -> None:
    # DVC fails on YAML timestamps when it records a stage, after the outputs are written: refuse early.
    root = params_root(tmp_path, "validation_start: null", line)
    value = line.split(": ", 1)[1]
    with pytest.raises(ParamsError, match=rf"line \d+: .* unquoted date.*Quote it: '{re.escape(value)}'"):
        load_params(root)


def test_a_quoted_date_is_a_setting_and_config_classes_still_build(tmp_path: Path) -> None:
    from assets.shared.timestamps import parse_cutoff

    root = params_root(tmp_path, "validation_start: null", "validation_start: '2025-07-01'")
    assert section("split", root)["validation_start"] == "2025-07-01"
    cls = config_class("split", dg.Config, root)
    cls.to_config_schema()
    assert cls().validation_start == "2025-07-01"
    assert parse_cutoff("2025-07-01", "split.validation_start", null_means=None) is not None


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    root = params_root(
        tmp_path, "  learning_rate: 0.002\n", "  learning_rate: 0.002\n  learning_rate: 0.004\n"
    )
    with pytest.raises(ParamsError, match=r"line \d+: 'learning_rate' is given twice"):
        load_params(root)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2e-4", 2e-4),
        ("2E-4", 2e-4),
        ("1E5", 1e5),
        ("-3e+2", -300.0),
        ("2.0e4", 2.0e4),
        (".5e3", 500.0),
        ("2.0e-4", 2.0e-4),
        ("0.002", 0.002),
        ('"2e-4"', "2e-4"),
        ("e5", "e5"),
        ("1e", "1e"),
    ],
)
def test_exponent_floats_are_floats_as_in_yaml_1_2(tmp_path: Path, value: str, expected: object) -> None:
    root = params_root(tmp_path, "learning_rate: 0.002", f"learning_rate: {value}")
    loaded = section("train", root)["learning_rate"]
    assert loaded == expected and type(loaded) is type(expected)


def test_an_exponent_learning_rate_makes_a_float_config_field(tmp_path: Path) -> None:
    cls = config_class(
        "train", dg.Config, params_root(tmp_path, "learning_rate: 0.002", "learning_rate: 2e-4")
    )
    assert cls().learning_rate == 2e-4
    assert cls(learning_rate=1e-3).learning_rate == 1e-3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_seq_length: {tokens: 256}", r"train\.max_seq_length is a dict .*single value"),
        ("max_seq_length: [[256]]", r"train\.max_seq_length is \[\[256\]\]: a list setting"),
        ("max_seq_length: [256, null]", r"train\.max_seq_length .* without nulls"),
        ("max_seq_length: [1, 2.5]", r"train\.max_seq_length .*values of one type"),
        ("max_seq_length: [a, {b: 1}]", r"train\.max_seq_length .*mappings"),
        ("max_seq_length: !!binary aGk=", r"train\.max_seq_length is a bytes"),
        ("yes: 256", r"train\.True: a setting name must be"),
        ("2: 256", r"train\.2: a setting name must be"),
        ("_hidden: 256", r"train\._hidden: a setting name must be"),
    ],
)
def test_a_setting_that_is_not_a_scalar_or_a_list_of_them_is_explained(
    tmp_path: Path, line: str, message: str
) -> None:
    root = params_root(tmp_path, "max_seq_length: 256", line)
    with pytest.raises(ParamsError, match=message) as caught:
        load_params(root)
    assert str(root / "params.yaml") in str(caught.value)


@pytest.mark.parametrize("line", ["max_seq_length: [256, 512]", "max_seq_length: []", "max_seq_length: null"])
def test_lists_of_one_scalar_type_and_nulls_are_accepted(tmp_path: Path, line: str) -> None:
    root = params_root(tmp_path, "max_seq_length: 256", line)
    assert "max_seq_length" in section("train", root)
    config_class("train", dg.Config, root)()


def test_the_shipped_params_file_recommends_a_learning_rate_yaml_reads_as_a_number() -> None:
    text = (PROJECT_ROOT / "params.yaml").read_text(encoding="utf-8")
    assert "about 2.0e-4" in text and "about 2e-4" not in text


@pytest.mark.parametrize(
    ("old", "new", "stage", "words"),
    [
        (
            "  enabled: true",
            "  enabled: 'no'",
            "augment",
            ("enabled", "'no'", "true or false", "without quotes"),
        ),
        ("  epochs: 2", "  epochs: '2'", "train", ("epochs", "'2'", "a number")),
        ("  lora_dropout: 0.05", "  lora_dropout: true", "train", ("lora_dropout", "True", "a number")),
        ("  pivot_langs: [de]", "  pivot_langs: [1]", "augment", ("pivot_langs", "1", "text")),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_the_code_that_reads_it(
    tmp_path: Path, old: str, new: str, stage: str, words: tuple[str, ...]
) -> None:
    """A Config field takes its type from the YAML value, so a quoted 'no' would reach the code as the
    text "no", which is true; the settings dataclasses and stage_value check values against the types
    the code declares."""
    from assets.augment.settings import AugmentSettings
    from assets.params import settings_from
    from assets.publishing import stage_value
    from assets.train.settings import TrainSettings

    root = params_root(tmp_path, old, new)
    config = config_class(stage, dg.Config, root)()
    values = config.model_dump()
    with pytest.raises((ValueError, dg.Failure)) as caught:
        if stage == "augment" and "enabled" in old:
            stage_value(config, "enabled", bool)
        else:
            settings_from(AugmentSettings if stage == "augment" else TrainSettings, values)
    message = str(caught.value) if isinstance(caught.value, ValueError) else caught.value.description
    for word in words:
        assert word in message, (word, message)


def test_an_int_is_a_float_and_checked_values_keep_their_kind() -> None:
    from assets.params import checked_value

    assert checked_value("x", 1, float) == 1.0 and isinstance(checked_value("x", 1, float), float)
    assert checked_value("x", None, str | None) is None
    assert checked_value("x", ["a"], tuple[str, ...]) == ["a"]
    with pytest.raises(ValueError, match="setting 'x' is True"):
        checked_value("x", True, int)


def test_a_misspelled_setting_is_named_as_missing(tmp_path: Path) -> None:
    from assets.params import settings_from
    from assets.train.settings import TrainSettings

    root = params_root(tmp_path, "  learning_rate:", "  lerning_rate:")
    with pytest.raises(ValueError, match=r"'learning_rate' missing.*misspelled"):
        settings_from(TrainSettings, config_class("train", dg.Config, root)().model_dump())


def test_settings_from_names_a_setting_by_its_section(tmp_path: Path) -> None:
    from assets.ingest.settings import IngestOptions
    from assets.params import qualified_names, setting_values, settings_from

    root = params_root(tmp_path, "pii_redaction: true", "pii_redaction: 'no'")
    names = qualified_names(("data",), root)
    assert names["pii_redaction"] == "data.pii_redaction"
    with pytest.raises(ValueError, match=r"^setting 'data\.pii_redaction' is 'no' \(text\)"):
        settings_from(IngestOptions, setting_values(("data",), root), names)
    # Without names, the field name alone (as before).
    with pytest.raises(ValueError, match=r"^setting 'pii_redaction' is 'no'"):
        settings_from(IngestOptions, setting_values(("data",), root))


def test_an_unknown_section_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    root = params_root(tmp_path, "\nexport:\n", "\nexports:\n")
    with pytest.raises(
        ParamsError, match=r"section 'exports' is not read by any stage; did you mean 'export'\?"
    ):
        load_params(root)
