"""The MLflow registry resource on a throwaway SQLite store (the real MLflow, no server)."""

from __future__ import annotations

from pathlib import Path

from resources.registry import ModelRegistry


def _registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "artifacts")
    )


def _adapter(tmp_path: Path, content: str) -> Path:
    path = tmp_path / f"adapter-{content}"
    path.mkdir()
    (path / "adapter_config.json").write_text(f'{{"r": "{content}"}}')
    return path


def test_register_promote_and_download(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    assert registry.champion("m") is None
    info = registry.register(
        "m",
        _adapter(tmp_path, "one"),
        tags={"adapter_md5": "abc", "train_split_md5": "t1"},
        metrics={"ppl": 3.0},
        params={"train.lora_r": 8},
    )
    assert info["version"] == "1"
    assert info["tags"]["train_split_md5"] == "t1"
    assert registry.find_version("m", "adapter_md5", "abc")["version"] == "1"
    assert registry.find_version("m", "adapter_md5", "nope") is None

    registry.promote("m", info["version"])
    champion = registry.champion("m")
    assert champion["version"] == "1"
    downloaded = registry.download_adapter(champion, tmp_path / "dl")
    assert (downloaded / "adapter_config.json").read_text() == '{"r": "one"}'

    second = registry.register(
        "m", _adapter(tmp_path, "two"), tags={"adapter_md5": "def"}, metrics={}, params={}
    )
    assert second["version"] == "2"
    assert registry.champion("m")["version"] == "1"  # registering never promotes
    registry.tag("m", "2", "promotion", "rejected")
    assert registry.find_version("m", "promotion", "rejected")["version"] == "2"


def test_an_unreachable_registry_is_an_error_not_an_absent_champion(monkeypatch) -> None:
    import pytest
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = ModelRegistry(tracking_uri="http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(MlflowException):
        registry.champion("m")
