from difflab.models.unet import (
    ClassConditionalUNet,
    TimeConditionalUNet,
    UnconditionalUNet,
    build_model,
    count_parameters,
)

__all__ = ["ClassConditionalUNet", "TimeConditionalUNet", "UnconditionalUNet", "build_model", "count_parameters"]
