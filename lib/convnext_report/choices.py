"""The choices of the config keys that take one of a few names (a leaf module: it imports nothing)."""

__all__ = ["DEFAULT_STEM_STRIDE", "HEADS", "NORMS", "OPTIMIZERS", "SCHEDULES", "SELECTIONS", "STEM_STRIDES"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "radam", "adamw")  #: SGD with Nesterov momentum, RAdam, AdamW
SCHEDULES: tuple[str, ...] = ("cosine", "constant")  #: per-iteration, after a linear warmup
NORMS: tuple[str, ...] = ("layernorm", "dyt")  #: LayerNorm, or Dynamic Tanh in its place
HEADS: tuple[str, ...] = ("linear", "attention")  #: timm's classifier head, or the self-attention head
STEM_STRIDES: tuple[int, ...] = (1, 2, 4)  #: 4 is the ImageNet stem
#: the stem stride of every default (config, build_model, complexity): 2 suits the 32-px images of this book
DEFAULT_STEM_STRIDE = 2
SELECTIONS: tuple[str, ...] = ("holdout", "test")  #: where the best epoch is chosen
