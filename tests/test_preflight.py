"""Preflight: every setting of a run is checked before its first step, each problem named by section.key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.params import ParamsError, load_params
from assets.preflight import preflight, read_settings, run_stages, unknown_settings
from assets.shared.errors import InputError
from tests.conftest import PROJECT_ROOT
from tests.test_params import params_root


def test_the_project_params_pass_and_every_setting_is_read() -> None:
    preflight(root=PROJECT_ROOT)
    params = load_params(PROJECT_ROOT)
    every = {f"{section}.{key}" for section, settings in params.items() for key in settings}
    assert unknown_settings(PROJECT_ROOT) == []
    assert read_settings(PROJECT_ROOT) == every


def test_a_bad_training_method_names_train_method(tmp_path: Path) -> None:
    root = params_root(tmp_path, "method: qlora", "method: qloraa")
    with pytest.raises(InputError, match=r"adapter: .*train\.method.*qloraa"):
        preflight(root=root)
    # A run that does not train does not need it.
    preflight(["raw_examples", "clean", "augmented_examples", "split"], root=root)


def test_a_type_error_names_its_section(tmp_path: Path) -> None:
    root = params_root(tmp_path, "pii_redaction: true", "pii_redaction: 'no'")
    with pytest.raises(
        InputError, match=r"setting 'data\.pii_redaction' is 'no' \(text\); it must be true or false"
    ):
        preflight(["raw_examples"], root=root)


def test_a_setting_read_from_another_section_is_named_by_its_own(tmp_path: Path) -> None:
    # clean reads train.max_seq_length: the message points at the train section, where it is written.
    root = params_root(tmp_path, "max_seq_length: 256", "max_seq_length: '256'")
    with pytest.raises(InputError) as caught:
        preflight(["clean"], root=root)
    assert "clean: setting 'train.max_seq_length' is '256'" in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = params_root(tmp_path, "method: qlora", "method: qloraa")
    text = (root / "params.yaml").read_text().replace("pii_redaction: true", "pii_redaction: 'no'", 1)
    (root / "params.yaml").write_text(text)
    with pytest.raises(InputError, match=r"2 setting problem\(s\)") as caught:
        preflight(root=root)
    assert "data.pii_redaction" in str(caught.value) and "train.method" in str(caught.value)


def test_an_unknown_key_is_named_with_the_closest_known_one(tmp_path: Path) -> None:
    root = params_root(
        tmp_path, "near_dup_threshold: 0.7", "near_dup_threshold: 0.7\n  near_dup_thresold: 0.5"
    )
    assert unknown_settings(root) == [
        "params.yaml: setting 'clean.near_dup_thresold' is not read by any stage; did you mean "
        "'near_dup_threshold'?"
    ]
    # Whichever stages run: the typo is never read by anything.
    with pytest.raises(InputError, match=r"clean\.near_dup_thresold"):
        preflight(["merged_model"], root=root)


def test_an_unknown_section_is_named_with_the_closest_known_one(tmp_path: Path) -> None:
    root = params_root(tmp_path, "\nevaluate:\n", "\nevaluation:\n")
    with pytest.raises(
        ParamsError, match=r"section 'evaluation' is not read by any stage; did you mean 'evaluate'"
    ):
        preflight(root=root)


def test_launchpad_overrides_are_checked() -> None:
    run_config = {"ops": {"adapter": {"config": {"method": "qloraa"}}}}
    with pytest.raises(InputError, match=r"train\.method"):
        preflight(["adapter"], run_config=run_config, root=PROJECT_ROOT)
    # An augmentation turned off for the run builds no augment settings, as its asset does.
    off = {"ops": {"augmented_examples": {"config": {"enabled": False, "sample_rate": 7.0}}}}
    preflight(["augmented_examples"], run_config=off, root=PROJECT_ROOT)
    on = {"ops": {"augmented_examples": {"config": {"sample_rate": 7.0}}}}
    with pytest.raises(InputError, match="sample_rate"):
        preflight(["augmented_examples"], run_config=on, root=PROJECT_ROOT)


def test_run_stages_maps_a_selection_to_its_stages() -> None:
    assert run_stages(None) is None
    assert run_stages(["test_split", "adapter", "rejected_examples"]) == ["clean", "split", "adapter"]


def test_the_sensor_and_schedule_skip_with_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines import automation

    def bad_config(stage_names: Any = None) -> dict[str, Any]:
        return {"ops": {"adapter": {"config": {"method": "qloraa"}}}}

    monkeypatch.setattr(automation, "current_run_config", bad_config)
    skipped = automation.checked_run_config()
    assert isinstance(skipped, dg.SkipReason)
    assert "not launched" in (skipped.skip_message or "") and "train.method" in (skipped.skip_message or "")
    result = automation.weekly_retrain(dg.build_schedule_context())
    assert isinstance(result, dg.SkipReason) and "train.method" in (result.skip_message or "")


def test_a_ui_run_fails_at_its_first_step(tmp_path: Path) -> None:
    # A launchpad run of base_model + adapter with a bad method: base_model (upstream of every model and
    # data stage after ingest) fails naming the setting, so adapter never starts.
    from pipelines.definitions import ASSETS
    from pipelines.io_manager import ArtifactIOManager
    from resources.dvc import DvcResource
    from resources.models import ModelLoader
    from resources.registry import ModelRegistry
    from resources.storage import StorageResource

    root = tmp_path / "root"
    storage = StorageResource(root=str(root))
    result = dg.materialize(
        ASSETS,
        selection=["base_model", "adapter"],
        resources={
            "storage": storage,
            "io_manager": ArtifactIOManager(storage=storage),
            "dvc": DvcResource(root=str(root), enabled=False),
            "models": ModelLoader(embedded_root=str(root / "models" / "embedded")),
            "registry": ModelRegistry(
                tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_location=str(root / "mlartifacts")
            ),
        },
        run_config={"ops": {"adapter": {"config": {"method": "qloraa"}}}},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "base_model"
    description = failure.event_specific_data.error.message if failure.event_specific_data.error else ""
    assert "train.method" in str(failure.event_specific_data.user_failure_data.description or description)
    assert not (root / "models" / "base_model").exists()


def test_the_cli_fails_before_any_data_stage(tmp_path_factory: pytest.TempPathFactory) -> None:
    from pipelines.workspace import copy_project, run_in

    root = copy_project(tmp_path_factory.mktemp("project"), {"train": {"method": "qloraa"}})
    done = run_in(root, [sys.executable, "-m", "pipelines.materialize", "--all"], timeout=300)
    assert done.returncode == 2, done.stderr
    assert "train.method" in done.stderr and "qloraa" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (root / "data" / "raw_examples.parquet").exists()


def test_a_base_model_that_does_not_exist_is_named(tmp_path: Path) -> None:
    root = params_root(tmp_path, "base_model: embedded", "base_model: ./no/such/model")
    with pytest.raises(InputError, match=r"train\.base_model = './no/such/model'.*does not exist"):
        preflight(["base_model"], root=root)


def test_a_base_model_without_a_chat_template_fails_before_the_run(tmp_path: Path) -> None:
    root = params_root(tmp_path, "base_model: embedded", "base_model: models/plain")
    model = root / "models" / "plain"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')
    with pytest.raises(
        InputError, match=r"train\.base_model = 'models/plain': its tokenizer has no chat template"
    ):
        preflight(["base_model"], root=root)
    (model / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    preflight(["base_model"], root=root)


def test_a_hub_id_missing_from_the_cache_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = params_root(tmp_path, "base_model: embedded", "base_model: someone/not-cached-model")
    with pytest.raises(
        InputError, match=r"not in the local Hugging Face cache.*hf download someone/not-cached"
    ):
        preflight(["base_model"], root=root)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("optimizer: auto", "optimizer: adamw_foo", r"optimizer 'adamw_foo' is not a transformers optimizer"),
        ("epochs: 2", "epochs: 1.5e400", r"epochs must be a finite number; got inf"),
        ("learning_rate: 0.002", "learning_rate: .inf", r"learning_rate must be a finite number > 0"),
        ("precision: auto", "precision: float16", r"adapter: .*train.precision.*float16"),
    ],
)
def test_training_settings_the_device_or_transformers_refuse_fail_before_the_run(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    root = params_root(tmp_path, old, new)
    with pytest.raises(InputError, match=message):
        preflight(["adapter"], root=root)


@pytest.mark.parametrize(
    ("device", "message"),
    [("foo", r"PIPELINE_DEVICE='foo' is not a torch device"), ("cuda", r"PIPELINE_DEVICE='cuda', but")],
)
def test_a_device_torch_cannot_use_is_named_before_the_run(
    monkeypatch: pytest.MonkeyPatch, device: str, message: str
) -> None:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.setenv("PIPELINE_DEVICE", device)
    with pytest.raises(InputError, match=message):
        preflight(["evaluation_report"], root=PROJECT_ROOT)
    # A run that loads no model does not need it.
    preflight(["raw_examples"], root=PROJECT_ROOT)
