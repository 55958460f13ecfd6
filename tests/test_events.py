"""Metrics lines are mirrored into TensorBoard event files next to metrics.jsonl."""

import glob
import os

from tensorboardX.proto import event_pb2  # the protobuf the files hold

from supernet import records


def _read_events(file):
    """(tag, step, value) of every scalar in a TFRecord event file (8-byte length, 4-byte crc, data, 4-byte crc)."""
    out = []
    with open(file, "rb") as f:
        raw = f.read()
    i = 0
    while i < len(raw):
        length = int.from_bytes(raw[i:i + 8], "little")
        event = event_pb2.Event.FromString(raw[i + 12:i + 12 + length])
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value]
        i += 12 + length + 4
    return out


def test_metrics_go_to_tensorboard_event_files(tmp_path):
    log = records.MetricsLog(str(tmp_path))
    log.write("supernet", 50, loss=1.5, accuracy=0.25, note="text is skipped")
    log.write("supernet", 100, loss=0.5, accuracy=0.75)
    files = glob.glob(os.path.join(tmp_path, "events.out.tfevents.*"))
    assert len(files) == 1 and os.path.isfile(tmp_path / "metrics.jsonl")
    scalars = _read_events(files[0])
    assert ("supernet/loss", 50, 1.5) in scalars and ("supernet/loss", 100, 0.5) in scalars
    assert ("supernet/accuracy", 100, 0.75) in scalars
    assert not any(tag.endswith(("/note", "/time", "/step")) for tag, _, _ in scalars)


def test_the_event_file_closes_with_its_log(tmp_path):
    import gc
    import warnings
    log = records.MetricsLog(str(tmp_path))
    log.write("supernet", 1, loss=1.0)
    writer = log.events.writer
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)   # an unclosed file would warn when collected
        del log
        gc.collect()
    assert writer._py_recordio_writer._writer.closed
