"""params.yaml is the one home of defaults; Config classes are generated from it."""

from __future__ import annotations

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
