"""The training engine (Lightning): one ``train`` used by every command.

``train`` is imported lazily so that building the command-line parser does not import Lightning.
"""

from spinalnet.training.config import CompareConfig, TrainConfig

__all__ = ["CompareConfig", "TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from spinalnet.training.train import train

        return train
    raise AttributeError(name)
