"""One model load at a time in this process.

transformers' `from_pretrained` is not thread-safe: while it builds a model it swaps methods of
the shared `PreTrainedModel` class (`tie_weights` out and back in). Two loads on two threads (the
warm-up loading the embedding model while a draft loads its denoiser, or two users starting
drafts with different models) then interleave their swaps: a masked LM comes out with its tied
output layer never materialised ("Cannot copy out of meta tensor"), or weight tying stays switched
off for the rest of the process. Every load of a neural model holds `MODEL_LOADS`; a load takes
seconds and happens once per model, so nothing waits for long.
"""

from __future__ import annotations

import threading

MODEL_LOADS = threading.RLock()  # re-entrant, so a load that starts another cannot deadlock
