"""Fine-tuning from single-view models (``TrainConfig.init``): VEMIC from MLIC++, CAMSIC from
ELIC, through the real training loop; other combinations are refused in one line."""

from __future__ import annotations

import pytest
import torch

from mvarchive.codecs import create_codec, load_codec
from mvarchive.training import TrainConfig, train_codec_loop
from mvarchive.training.init import InitError, finetune_defaults, read_init_source


def _config(sample_data, out, codec, **kw) -> TrainConfig:
    kw = {"steps": 0, "batch_size": 1, "crop": 64, "learning_rate": 1e-3, **kw}
    return TrainConfig(dataset=str(sample_data.stereo), output_dir=str(out), codec=codec, preset="tiny", **kw)


@pytest.fixture(scope="module")
def single_view(sample_data, tmp_path_factory):
    """Tiny MLIC++ and ELIC single-view models after two real training steps (other weights
    than any fresh codec the loop could draw), as checkpoints."""
    root = tmp_path_factory.mktemp("single")
    return {
        name: train_codec_loop(_config(sample_data, root / name, name, steps=2, lmbda=435.7, seed=5)).checkpoint
        for name in ("single-view-mlicpp", "single-view-elic2022-chandelier")
    }


def _state(checkpoint_or_model) -> dict[str, torch.Tensor]:
    model = load_codec(checkpoint_or_model) if isinstance(checkpoint_or_model, str) else checkpoint_or_model
    return model.state_dict()


@pytest.mark.slow
def test_vemic_starts_from_mlicpp_and_fine_tunes_everything(sample_data, single_view, tmp_path, capsys):
    source = _state(single_view["single-view-mlicpp"])
    start = train_codec_loop(_config(sample_data, tmp_path / "a", "vemic", init=single_view["single-view-mlicpp"]))
    assert "init (vemic-from-mlicpp)" in capsys.readouterr().out
    at_zero = _state(start.checkpoint)
    base = [k for k in at_zero if k.startswith("base.") and "_quantized_cdf" not in k and "_offset" not in k]
    assert base and all(torch.equal(at_zero[k], source[k]) for k in base)  # single-view-mlicpp keeps MLIC++ under base.
    torch.manual_seed(0)  # the loop's seed: the view context is a fresh one, not loaded from anywhere
    fresh = create_codec("vemic", "tiny").state_dict()
    context = [k for k in at_zero if k.startswith("view_context.")]
    assert context and all(torch.equal(at_zero[k], fresh[k]) for k in context)
    assert not at_zero["view_context.slices.0.fuse_anchor.weight"].any()  # zero fusion: codes as MLIC++

    one = _state(train_codec_loop(_config(sample_data, tmp_path / "b", "vemic", steps=1,
                                          init=single_view["single-view-mlicpp"])).checkpoint)
    # one step moves both the loaded base (nothing is frozen) and the new view context
    entropy = next(k for k in one if k.startswith("base.mem.") and k.endswith(".weight"))
    for key in ("base.g_a.0.conv1.weight", "base.g_s.7.0.weight", entropy):
        assert not torch.equal(one[key], at_zero[key]), key
    assert one["view_context.slices.1.fuse_anchor.weight"].any()


@pytest.mark.slow
def test_camsic_starts_from_elic_transforms(sample_data, single_view, tmp_path):
    elic = load_codec(single_view["single-view-elic2022-chandelier"])
    start = load_codec(train_codec_loop(_config(sample_data, tmp_path / "a", "camsic",
                                                init=single_view["single-view-elic2022-chandelier"])).checkpoint)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # the very transforms: same features, same reconstruction
        y = start.g_a(x)
        assert torch.equal(y, elic.model.g_a(x)) and torch.equal(start.g_s(y), elic.model.g_s(y))
    torch.manual_seed(0)
    fresh = create_codec("camsic", "tiny")
    assert torch.equal(start.transformer.blocks[0].attn.qkv.weight, fresh.transformer.blocks[0].attn.qkv.weight)
    assert not torch.equal(start.g_a[0].weight, fresh.g_a[0].weight)

    one = load_codec(train_codec_loop(_config(sample_data, tmp_path / "b", "camsic", steps=1,
                                              init=single_view["single-view-elic2022-chandelier"])).checkpoint)
    assert not torch.equal(one.g_a[0].weight, start.g_a[0].weight)
    assert not torch.equal(one.transformer.blocks[0].attn.qkv.weight, start.transformer.blocks[0].attn.qkv.weight)


def test_other_combinations_are_refused_in_one_line(sample_data, single_view, tmp_path):
    mlicpp = single_view["single-view-mlicpp"]
    for codec, preset, held in (("camsic", "tiny", "single-view-mlicpp:tiny"),
                                ("ldmic-fast", "tiny", "single-view-mlicpp:tiny"),
                                ("vemic", "paper", "single-view-mlicpp:tiny")):
        config = _config(sample_data, tmp_path / codec, codec, init=mlicpp)
        config.preset = preset
        with pytest.raises(InitError) as error:
            train_codec_loop(config)
        message = str(error.value)
        assert "\n" not in message and f"holds {held}, this run trains {codec}:{preset}" in message
        assert "supported: the same codec and preset (retraining), vemic from single-view-mlicpp" in message
    assert not (tmp_path / "camsic" / "last.pt").exists()


def test_paper_defaults_keep_the_source_lambda(single_view):
    source = read_init_source(single_view["single-view-mlicpp"])
    assert finetune_defaults(source, "vemic") == {"learning_rate": 1e-4, "lr_schedule": "paper", "lmbda": 435.7}
    elic = read_init_source(single_view["single-view-elic2022-chandelier"])
    assert "lmbda" not in finetune_defaults(elic, "camsic")  # CAMSIC: one ELIC model for every λ
    assert finetune_defaults(source, "camsic") == {}


@pytest.mark.slow
def test_init_from_a_registered_version(sample_data, single_view, tmp_path, mlflow_uri):
    import mlflow

    from mvarchive.models.publish import register_checkpoint

    client = mlflow.MlflowClient(mlflow_uri)
    run = client.create_run(client.create_experiment("finetune"))
    ref = register_checkpoint(single_view["single-view-mlicpp"], run.info.run_id, mlflow_uri)
    result = train_codec_loop(_config(sample_data, tmp_path / "a", "vemic", init=ref.uri,
                                      storage_options={"mlflow_tracking_uri": mlflow_uri}))
    assert ref.uri.startswith("models:/mvarchive-single-view-mlicpp/")
    at_zero, source = _state(result.checkpoint), _state(single_view["single-view-mlicpp"])
    assert torch.equal(at_zero["base.g_a.0.conv1.weight"], source["base.g_a.0.conv1.weight"])
