"""Layer 3: the dynamics recorder, proxy training, and the scorers over a ``DynamicsLog``."""

from curate.dynamics import aum, cartography, el2n, forgetting, grand, loss  # noqa: F401  (register scorers)
from curate.dynamics._registry import SCORERS
from curate.dynamics.log import DynamicsLog
from curate.dynamics.proxy import ProxyConfig, proxy_outputs, train_inputs, train_proxy
from curate.dynamics.recorder import DynamicsRecorder, EvalPass, epoch_signals, eval_epochs

__all__ = [
    "SCORERS",
    "DynamicsLog",
    "DynamicsRecorder",
    "EvalPass",
    "ProxyConfig",
    "epoch_signals",
    "eval_epochs",
    "proxy_outputs",
    "train_inputs",
    "train_proxy",
]
