"""User-facing errors.

Every error a user can cause (bad shape, malformed spec, infeasible embedding,
malformed program) is an `EmbedderError`: the CLI prints its message on one
line and exits non-zero, never with a traceback.
"""


class EmbedderError(Exception):
    """A problem with the user's input, reported as one line."""


class SpecError(EmbedderError):
    """A hardware spec or pattern file is malformed or describes an invalid configuration."""


class EncodingError(EmbedderError):
    """An instruction or micro-op field does not fit its bit width."""


class BundleError(EmbedderError):
    """A program bundle is malformed (missing file, truncated dram.bin, bad program.json)."""


class SimulationError(EmbedderError):
    """A program misbehaves on the simulator (deadlock, race, overrun, missing FINISH)."""


class OperatorError(EmbedderError):
    """An operator has invalid parameters."""


class InfeasibleError(EmbedderError):
    """No embedding or schedule exists; the message says which limit prevents it."""


class ResourceError(EmbedderError):
    """An input would need more memory or work than a resource limit allows (`embedder.limits`)."""
