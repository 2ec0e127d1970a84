"""Model registry: small Keras 3 functional models, backend-agnostic (no ``tf.*`` here).

Every builder takes the input shape (H, W, C), the number of outputs and the architecture options
(``batchnorm``, ``dropout``, ``width``) and returns an uncompiled ``keras.Model``.  Regression heads
output the standardised target (one value, or mean and log-variance for ``gaussian`` heads);
classification heads output one logit.

* ``dense2`` / ``dense5``: the lab's fully connected baselines, 2 and 5 hidden layers on the
  flattened stamp;
* ``cnn``: the lab's compact "ready to run" CNN (three conv + max-pool stages, flatten, dense);
* ``sizenet``: our stronger design: VGG-style pairs of 3x3 convolutions with batch norm, global
  average *and* max pooling (size information lives both in the mean profile and the peak), a
  small dense head.

Output layers are float32 whatever the global dtype policy, so mixed-precision training
(``train.precision``) keeps its losses and predictions in full precision.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers


def _head(x, outputs: int, dropout: float, hidden: int = 64):
    if dropout > 0:
        x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden, activation="relu", name="head_dense")(x)
    return layers.Dense(outputs, name="head_out", dtype="float32")(x)


def dense(input_shape, outputs: int = 1, hidden_layers: int = 2, width: int = 256,
          batchnorm: bool = False, dropout: float = 0.0, **_) -> keras.Model:
    """Fully connected network on the flattened stamp."""
    inp = keras.Input(shape=tuple(input_shape), name="stamps")
    x = layers.Flatten()(inp)
    for i in range(hidden_layers):
        x = layers.Dense(width, use_bias=not batchnorm, name=f"dense_{i}")(x)
        if batchnorm:
            x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        if dropout > 0:
            x = layers.Dropout(dropout)(x)
    out = layers.Dense(outputs, name="head_out", dtype="float32")(x)
    return keras.Model(inp, out, name=f"dense{hidden_layers}")


def dense2(input_shape, outputs: int = 1, **opts) -> keras.Model:
    return dense(input_shape, outputs, hidden_layers=2, **opts)


def dense5(input_shape, outputs: int = 1, **opts) -> keras.Model:
    return dense(input_shape, outputs, hidden_layers=5, **opts)


def _conv(x, filters: int, batchnorm: bool, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=not batchnorm, name=name)(x)
    if batchnorm:
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.Activation("relu")(x)


def cnn(input_shape, outputs: int = 1, width: int = 16, batchnorm: bool = False,
        dropout: float = 0.0, **_) -> keras.Model:
    """The compact "ready to run" CNN of the lab: conv(3x3)+max-pool x3, flatten, dense(64)."""
    inp = keras.Input(shape=tuple(input_shape), name="stamps")
    x = inp
    for i, f in enumerate((width, 2 * width, 4 * width)):
        x = _conv(x, f, batchnorm, f"conv{i}")
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    out = _head(x, outputs, dropout)
    return keras.Model(inp, out, name="cnn")


def sizenet(input_shape, outputs: int = 1, width: int = 24, batchnorm: bool = True,
            dropout: float = 0.1, **_) -> keras.Model:
    """Our stronger CNN: three stages of two 3x3 convs (+BN), avg+max global pooling, dense head."""
    inp = keras.Input(shape=tuple(input_shape), name="stamps")
    x = inp
    for i, f in enumerate((width, 2 * width, 4 * width)):
        x = _conv(x, f, batchnorm, f"conv{i}a")
        x = _conv(x, f, batchnorm, f"conv{i}b")
        if i < 2:
            x = layers.MaxPooling2D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    out = _head(x, outputs, dropout, hidden=96)
    return keras.Model(inp, out, name="sizenet")


#: name -> builder(input_shape, outputs, **options)
REGISTRY: dict[str, Callable[..., keras.Model]] = {
    "dense2": dense2,
    "dense5": dense5,
    "cnn": cnn,
    "sizenet": sizenet,
}


def build(name: str, input_shape, outputs: int = 1, **options) -> keras.Model:
    """Build a registered model by name; unknown names raise a ValueError that lists the known ones."""
    try:
        builder = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(REGISTRY)}") from None
    return builder(input_shape, outputs, **options)


#: the log-variance output is floored smoothly at LOGVAR_FLOOR and capped at LOGVAR_CEIL (standardised
#: target units: sigma >= exp(-4) = 0.018 std, far below the best size error a network reaches)
LOGVAR_FLOOR, LOGVAR_CEIL = -8.0, 8.0
#: beta of the beta-NLL training loss (Seitzer et al. 2022): each galaxy's NLL is weighted by its
#: (constant) predicted variance to the power beta, so confident galaxies cannot dominate the gradient
BETA = 0.5


def gaussian_logvar(raw):
    """Log-variance of a Gaussian head from its raw second output: FLOOR + softplus(raw - FLOOR),
    capped at CEIL (a smooth floor keeps a gradient where a hard clip would cut it).  keras.ops only;
    the numpy twin is ``uncertainty.gaussian_logvar``."""
    from keras import ops

    return ops.minimum(LOGVAR_FLOOR + ops.softplus(raw - LOGVAR_FLOOR), LOGVAR_CEIL)


def _mu_logvar_nll(y_true, y_pred):
    from keras import ops

    y = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
    mu, logvar = y_pred[:, 0], gaussian_logvar(y_pred[:, 1])
    return logvar, 0.5 * (1.8378770664093453 + logvar + ops.square(y - mu) * ops.exp(-logvar))


@keras.saving.register_keras_serializable(package="deepsky", name="gaussian_nll")
def gaussian_nll(y_true, y_pred):
    """Per-sample Gaussian negative log-likelihood for a (mean, raw log-variance) head (keras.ops only).

    ``y_pred[:, 0]`` is the mean and ``gaussian_logvar(y_pred[:, 1])`` the natural log of the
    variance, both in the units of the (standardised) target.
    NLL = 0.5 * (ln(2 pi) + logvar + (y - mu)^2 / exp(logvar)).
    """
    return _mu_logvar_nll(y_true, y_pred)[1]


@keras.saving.register_keras_serializable(package="deepsky", name="gaussian_beta_nll")
def gaussian_beta_nll(y_true, y_pred):
    """The Gaussian head's training loss: beta-NLL, stop_gradient(var ** BETA) * NLL.

    Plain NLL lets a galaxy with a tiny predicted variance multiply its mean's gradient by 1/var, and
    training blows up (observed: loss spikes of 1e6, then a collapse to the prior).  The weight is held
    constant in the gradient, so the optimum of the variance is still the residual variance.
    """
    from keras import ops

    logvar, nll = _mu_logvar_nll(y_true, y_pred)
    return ops.stop_gradient(ops.exp(BETA * logvar)) * nll
