"""The paper's model zoo plus any torchvision or timm backbone, each with any arm's head (fc, spinal, mlp, ...)."""

from spinalnet.models.base import HeadedNet, SpinalOptions
from spinalnet.models.registry import MODELS, create_model, external_input, model_names

__all__ = ["HeadedNet", "MODELS", "SpinalOptions", "create_model", "external_input", "model_names"]
