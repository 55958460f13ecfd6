"""TensorBoard event files next to metrics.jsonl (tensorboardX), written by process 0 only.

Every numeric field of a metrics line becomes a scalar tagged `<stage>/<field>` (e.g.
`supernet/loss`) at the line's `step`. Open them with `tensorboard --logdir DIR`.
"""

from __future__ import annotations

import itertools
import numbers
import os
import time
import weakref

SKIPPED = ("step", "time")  # the x axis, and wall-clock time that TensorBoard records itself
_WRITERS = itertools.count()  # distinct file names for several logs in one directory and second


class EventMirror:
    """Mirrors metrics lines into `workdir/events.out.tfevents.*`; the file opens on the first write.

    Uses tensorboardX's synchronous `EventsWriter`: its `SummaryWriter` queues events to a thread,
    and its flush does not wait for that queue, so a line could still be missing when a run ends."""

    def __init__(self, workdir: str):
        self.workdir, self.writer, self.lines = workdir, None, 0

    def write(self, fields: dict) -> None:
        """Writes one metrics line's numeric fields as TensorBoard scalars."""
        from tensorboardX.event_file_writer import EventsWriter  # lazily: importing it costs a second
        from tensorboardX.proto import event_pb2, summary_pb2
        if self.writer is None:
            suffix = f".{os.getpid()}.{next(_WRITERS)}"
            self.writer = EventsWriter(os.path.join(self.workdir, "events"), filename_suffix=suffix)
            weakref.finalize(self, self.writer.close)   # the file closes with its mirror (or at exit)
        prefix = str(fields.get("stage", fields.get("phase", "metrics")))
        values = [summary_pb2.Summary.Value(tag=f"{prefix}/{name}", simple_value=float(value))
                  for name, value in fields.items()
                  if name not in SKIPPED and isinstance(value, numbers.Real) and not isinstance(value, bool)]
        step = int(fields.get("step", self.lines))
        self.writer.write_event(event_pb2.Event(wall_time=time.time(), step=step,
                                                summary=summary_pb2.Summary(value=values)))
        self.writer.flush()  # metrics lines come at log intervals only, so flushing each is cheap
        self.lines += 1
