"""TensorBoard event files next to metrics.jsonl (tensorboardX), written by process 0 only.

Every numeric field of a metrics line becomes a scalar tagged `<phase>/<field>` (e.g.
`supernet/loss`) at the line's `step` (or `evaluated` for search rounds). Open them with
`tensorboard --logdir DIR`.
"""

from __future__ import annotations

import numbers

STEP_FIELDS = ("step", "evaluated")


class EventMirror:
    """Mirrors metrics lines into `workdir/events.out.tfevents.*`; opened on the first write."""

    def __init__(self, workdir: str):
        self.workdir, self.writer, self.lines = workdir, None, 0

    def write(self, fields: dict) -> None:
        if self.writer is None:
            from tensorboardX import SummaryWriter  # lazily: importing it costs a second
            self.writer = SummaryWriter(logdir=self.workdir)
        step = next((int(fields[k]) for k in STEP_FIELDS if k in fields), self.lines)
        prefix = str(fields.get("phase", "metrics"))
        for name, value in fields.items():
            if name not in STEP_FIELDS and isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)
        self.writer.flush()  # metrics lines come at log intervals only, so flushing each is cheap
        self.lines += 1
