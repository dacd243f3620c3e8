"""Arms: any set of heads, a parameter-matched MLP, one initialisation rule, statistics across arms, equal tuning.

These fail if a confound of the two-head comparison comes back: a library's own head initialisation, an MLP
that is not the Spinal head's size, the test split read to choose a tuning value, contrasts without Holm.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_images
from spinalnet.commands.cli import main
from spinalnet.comparison.compare import compare
from spinalnet.comparison.config import CompareConfig
from spinalnet.heads.spec import parse_arm, split_arms
from spinalnet.models import create_model
from spinalnet.stats import holm

FAST = dict(epochs=2, batch_size=32, lr=0.05, progress=False)
LITE0 = "timm:tf_efficientnet_lite0"


def _new_linears(model: nn.Module) -> list[tuple[nn.Linear, int]]:
    """Every Linear of the head with the fan-in of the Linear it stands for: a Spinal hidden layer's ``input`` and
    ``chain`` are one Linear over [chunk, previous] in the paper's layout."""
    from spinalnet import SpinalLinear

    head = model.get_submodule(model.head_path)
    found, inner = [], set()
    for block in (m for m in head.modules() if isinstance(m, SpinalLinear)):
        for layer in block.layers:
            fan_in = layer.input.in_features + (layer.chain.in_features if layer.chain is not None else 0)
            found += [(m, fan_in) for m in (layer.input, layer.chain) if m is not None]
        inner |= {id(m) for m in block.modules()} - {id(block.output)}
    found += [(m, m.in_features) for m in head.modules() if isinstance(m, nn.Linear) and id(m) not in inner]
    return found


def _has_pytorch_default_init(linear: nn.Linear, fan_in: int | None = None) -> bool:
    """``nn.Linear``'s rule: weights and biases uniform within +-1/sqrt(fan_in); a uniform's std is bound/sqrt(3)."""
    bound = 1 / math.sqrt(fan_in or linear.in_features)
    w = linear.weight.detach()
    inside = w.abs().max() <= bound and (linear.bias is None or linear.bias.detach().abs().max() <= bound)
    spread = w.numel() < 500 or abs(float(w.std()) - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    return bool(inside and spread)


@pytest.mark.parametrize("model,kwargs", [("default-cnn", {}), ("vgg5", {}),
                                          ("tv:resnet18", dict(in_channels=3, image_size=(32, 32))),
                                          ("tv:vgg11", dict(in_channels=3, image_size=(32, 32))),
                                          (LITE0, dict(in_channels=3, image_size=(32, 32)))])
@pytest.mark.parametrize("arm", ["fc", "linear", "mlp", "mlp2", "spinal"])
def test_every_arm_s_new_layers_get_pytorch_s_default_initialisation(model, kwargs, arm):
    if model.startswith("timm:"):
        pytest.importorskip("timm")
    net = create_model(model, 10, head=arm, head_seed=0, **kwargs)
    linears = _new_linears(net)
    assert linears and all(_has_pytorch_default_init(m, fan_in) for m, fan_in in linears), [
        (m, fan_in, float(m.weight.abs().max())) for m, fan_in in linears]
    assert net.head_info["init"] == "pytorch-default"


def test_timm_s_own_classifier_initialisation_is_replaced_but_a_kept_pretrained_head_is_kept(lite0):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    own = timm.create_model("tf_efficientnet_lite0", num_classes=10).get_classifier()
    assert own.weight.abs().max() > 5 / math.sqrt(1280)  # timm's rule: uniform +-1/sqrt(classes), 11x torch's bound
    fc = create_model(LITE0, 10, head="fc", head_seed=0, in_channels=3, image_size=(32, 32))
    assert _has_pytorch_default_init(fc.get_classifier())
    kept = create_model(LITE0, 1000, head="fc", pretrained=str(lite0), head_seed=0)
    assert torch.equal(kept.get_classifier().weight, torch.load(lite0)["classifier.weight"])
    assert kept.head_info["init"].startswith("pretrained layers kept")


def test_heads_of_one_seed_do_not_depend_on_the_backbone_built_before_them():
    a = create_model("default-cnn", 10, head="spinal", head_seed=7)
    torch.manual_seed(123)  # another backbone initialisation
    b = create_model("default-cnn", 10, head="spinal", head_seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.head.state_dict().values(), b.head.state_dict().values()))
    assert not torch.equal(a.features[0].weight, b.features[0].weight)


@pytest.mark.parametrize("model,width,classes,kwargs", [
    ("default-cnn", 320, 10, {}), ("vgg5", 256, 10, {}), ("fast-cnn", 1152, 10, {}),
    (LITE0, 1280, 10, dict(in_channels=3, image_size=(64, 64), spinal_options=None)),
])
def test_the_mlp_arm_has_the_spinal_arm_s_parameter_count_within_one_percent(model, width, classes, kwargs):
    if model.startswith("timm:"):
        pytest.importorskip("timm")
        from spinalnet.models import SpinalOptions

        kwargs = {**kwargs, "spinal_options": SpinalOptions(layer_width=20, num_layers=4)}
    count = lambda net: sum(p.numel() for p in net.get_submodule(net.head_path).parameters())  # noqa: E731
    spinal = create_model(model, classes, head="spinal", **kwargs)
    mlp = create_model(model, classes, head="mlp", **kwargs)
    assert abs(count(mlp) - count(spinal)) <= 0.01 * count(spinal), (count(mlp), count(spinal))
    assert mlp.head_arm.get("dropout") == spinal.head_arm.get("dropout")
    assert mlp.head_arm.get("batch_norm") == spinal.head_arm.get("batch_norm")


def test_the_paper_sizes_of_the_issue():
    """320-26-10 for the MNIST CNN (8,538 Spinal parameters), 1280-41-10 for EfficientNet-Lite0 features."""
    assert create_model("default-cnn", 10, head="mlp").head_arm.get("hidden") == 26
    pytest.importorskip("timm")
    from spinalnet.models import SpinalOptions

    lite = create_model(LITE0, 10, head="mlp", in_channels=3, image_size=(64, 64),
                        spinal_options=SpinalOptions(layer_width=20, num_layers=4))
    assert lite.head_arm.get("hidden") == 41
    mlp2 = create_model(LITE0, 10, head="mlp2", in_channels=3, image_size=(64, 64),
                        spinal_options=SpinalOptions(layer_width=20, num_layers=4))
    assert [m.out_features for m, _ in _new_linears(mlp2)] == [40, 40, 10]  # the authors' 2w-2w-C with w = 20


def test_arm_lists_split_options_from_arms():
    assert split_arms("fc,mlp,spinal:layer_width=64,num_layers=8,fc:dropout=0") == [
        "fc", "mlp", "spinal:layer_width=64,num_layers=8", "fc:dropout=0"]
    assert parse_arm("spinal:layer_width=64,num_layers=8").get("num_layers") == 8


@pytest.mark.parametrize("arm,label", [
    ("fc", "the paper's baseline"), ("fc:dropout=0", "the model's head"), ("mlp", "same parameters"),
    ("mlp:dropout=0.5", "same parameters"), ("mlp:hidden=256", "an MLP"), ("mlp2", "the authors' 2-layer FC"),
])
def test_a_contrast_names_the_paper_baseline_and_same_size_only_for_those_arms(arm, label):
    from spinalnet.comparison.report import compare_row
    from spinalnet.heads.spec import contrast_label

    assert contrast_label(parse_arm(arm)) == label
    from spinalnet.comparison.results_file import ComparisonSummary

    stats = {"difference_mean": 1.0, "difference_ci95": [0.5, 1.5], "p_value": 0.01, "p_holm": 0.02, "seeds": 2,
             "ci_level": "seeds", "p_value_wilcoxon": None, "prob_improvement": 1.0, "better_in": 2,
             "seeds_for_power": None, "reference": "spinal", "label": "-"}
    contrasts = [{"arm": name, "kind": parse_arm(name).kind, **stats, "p_value": p}
                 for name, p in [("fc:dropout=0", 0.3), ("fc", 0.01), ("mlp:hidden=256", 0.4), ("mlp", 0.02)]]
    arms = {a["arm"]: {"spec": a["arm"], "seeds": [0, 1], "test_acc": [80.0, 81.0], "test_acc_std": 0.7,
                       "test_acc_mean": 80.5} for a in [*contrasts, {"arm": "spinal"}]}
    row = compare_row(ComparisonSummary.from_dict({"arms": arms, "contrasts": contrasts, "reference": "spinal",
                                                   "config": {"epochs": 1}, "dataset": "d", "model": "m"}))
    assert [(t.label, t.stats.arm) for t in row.tests] == [("vs fc", "fc"), ("vs same-size MLP", "mlp")]


@pytest.mark.parametrize("heads,message", [
    ("fc,mpl", "unknown head 'mpl' (did you mean 'mlp'?)"),
    ("spinal:width=4", "unknown option of 'spinal' heads 'width' (did you mean 'layer_width'?)"),
    ("mlp:hidden=0", "hidden must be a whole number >= 1, got '0'"),
    ("fc,fc", "--heads names fc more than once"),
    ("spinal:num_splits=999", "--heads spinal:num_splits=999: "),
])
def test_bad_arms_are_one_line_and_write_nothing(npz_file, tmp_path, capsys, heads, message):
    out = tmp_path / "out"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", heads, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spinalnet: error: ") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_reference_must_be_an_arm_and_train_takes_any_arm(npz_file, tmp_path, capsys):
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--reference", "mlp2", "--output", str(tmp_path / "x")]) == 2
    assert "--reference 'mlp2' is not one of --heads (fc, mlp, spinal) (did you mean 'mlp'?)" in capsys.readouterr().err
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,,spinal", "--output", str(tmp_path / "x")]) == 2
    assert "--heads 'fc,,spinal' has an empty item" in capsys.readouterr().err and not (tmp_path / "x").exists()
    out = tmp_path / "t"
    assert main(["train", "--dataset", f"npz:{npz_file}", "--head", "mlp:hidden=12,dropout=0.2", "--epochs", "1",
                 "--output", str(out), "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["head_info"]["layers"] == ["Linear(320->12)", "Linear(12->4)"]
    assert result["head_info"]["dropout"] == [0.2] and result["head"] == "mlp:hidden=12,dropout=0.2"


@pytest.mark.slow
def test_contrasts_and_holm_follow_from_the_per_seed_lists(npz_file, tmp_path):
    from scipy import stats as sps

    out = tmp_path / "cmp"
    results = compare(CompareConfig(dataset=f"npz:{npz_file}", heads=["fc", "linear", "mlp", "spinal"], seeds=3,
                                    augment="rotate", output=str(out), **FAST), log=lambda s: None).to_dict()
    saved = json.loads((out / "results.json").read_text())
    assert saved["contrasts"] == results["contrasts"] and [c["arm"] for c in saved["contrasts"]] == ["fc", "linear", "mlp"]
    spinal = np.array(saved["arms"]["spinal"]["test_acc"])
    for c in saved["contrasts"]:
        d = spinal - np.array(saved["arms"][c["arm"]]["test_acc"])  # reference minus arm
        assert c["difference_mean"] == pytest.approx(d.mean(), abs=1e-6) and c["reference"] == "spinal"
        if c["p_value"] is not None:  # never a narrower interval than the paired t's
            low, high = c["difference_ci95"]
            assert high - low >= 2 * sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3) - 1e-6
    expected = holm([c["p_value"] for c in saved["contrasts"]])
    assert [c["p_holm"] for c in saved["contrasts"]] == pytest.approx(expected, abs=1e-6)
    for arm in saved["arms"].values():
        assert arm["head"]["layers"] and arm["head"]["dropout"] is not None and arm["spec"]


def _split_npz(path: Path, test_labels_seed: int | None = None) -> Path:
    x, y = make_images(320, classes=4)
    x_test, y_test = make_images(96, classes=4, seed=5)
    if test_labels_seed is not None:
        y_test = np.random.default_rng(test_labels_seed).permutation(y_test)
    np.savez(path, x=x, y=y.astype(np.int64), x_test=x_test, y_test=y_test.astype(np.int64))
    return path


@pytest.mark.slow
def test_the_tuned_value_is_chosen_on_validation_only(tmp_path):
    """Permuted test labels change every test accuracy but not one choice, nor any validation mean."""
    chosen = []
    for name, seed in (("real", None), ("swapped", 3)):
        data = _split_npz(tmp_path / f"{name}.npz", seed)
        results = compare(CompareConfig(dataset=f"npz:{data}", heads=["fc", "spinal"], seeds=2, tune={"lr": [0.003, 0.05]},
                                        output=str(tmp_path / name), **FAST), log=lambda s: None).to_dict()
        chosen.append(results["tune"])
        runs = sorted((tmp_path / name / "runs").iterdir())
        assert len(runs) == 8  # 2 arms x 2 values x 2 seeds
        tested = [json.loads((r / "result.json").read_text())["tested"] for r in runs]
        assert sum(tested) == 4  # the test split read for the chosen value of each (arm, seed) only
        assert all((r / "predictions.npz").exists() == t for r, t in zip(runs, tested))
    assert chosen[0] == chosen[1]


def test_tuning_values_are_checked(npz_file, tmp_path, capsys):
    for tune, message in (("lr=0.01,-1", "--lr must be > 0, got -1.0"), ("depth=3", "unknown option to tune 'depth'"),
                          ("lr=0.01,0.01", "--tune lr repeats a value"), ("batch_size=16.5", "batch_size takes whole")):
        assert main(["compare", "--dataset", f"npz:{npz_file}", "--tune", tune, "--output", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
