"""Configuration: the Settings model and its layered loader."""

from aetherflow.config.loader import load_settings
from aetherflow.config.models import AgentConfig, ModelConfig, Settings

__all__ = ["AgentConfig", "ModelConfig", "Settings", "load_settings"]
