"""The paper's model zoo plus any torchvision or timm backbone, each with an fc or a Spinal head."""

from spinalnet.models.base import HeadedNet, SpinalOptions
from spinalnet.models.registry import HEADS, MODELS, create_model, external_input, model_names

__all__ = ["HEADS", "HeadedNet", "MODELS", "SpinalOptions", "create_model", "external_input", "model_names"]
