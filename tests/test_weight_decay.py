"""--weight-decay applies to weights only: biases and norm parameters are not decayed (timm's rule)."""

from __future__ import annotations

import pytest
import torch

from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import Classifier

FACTS = {"num_classes": 10, "channels": 1, "image_size": [28, 28], "mean": [0.5], "std": [0.25],
         "augment": "none", "in_memory": True, "classes": [str(i) for i in range(10)]}


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizer_decays_only_weights(optimizer):
    config = TrainConfig(model="vgg5", head="spinal", optimizer=optimizer, weight_decay=0.05)
    module = Classifier(config, FACTS)
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    plain = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    names = dict(module.model.named_parameters())
    assert decay | plain == {id(p) for p in names.values()} and not decay & plain
    for name, param in names.items():
        is_weight = name.endswith("weight") and param.ndim >= 2  # Linear and conv weights, not norm scales
        assert (id(param) in decay) == is_weight, name
    assert id(names["head.layers.1.input.bias"]) in plain and id(names["head.layers.1.norm.weight"]) in plain
    assert id(names["head.layers.1.chain.weight"]) in decay and id(names["head.output.weight"]) in decay
