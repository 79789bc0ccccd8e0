"""Hardware description: configuration object and spec-file loading."""
from embedder.hw.config import HwConfig
from embedder.hw.spec import HwSpec, TimingModel, available_specs, load_spec

__all__ = ["HwConfig", "HwSpec", "TimingModel", "available_specs", "load_spec"]
