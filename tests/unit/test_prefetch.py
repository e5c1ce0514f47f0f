"""v2v.prefetch: the source stream read ahead (``read_ahead``) and the encoder fed behind (``WriteBehind``) in second
threads, in order, bounded, closed."""
from __future__ import annotations

import threading
import time

import pytest

from v2v.prefetch import WriteBehind, read_ahead


def counting(n: int, log: dict, fail_at: int | None = None):
    """A generator that records what it made, in which thread, and whether its ``finally`` ran."""
    log.update(made=[], threads=set(), closed=False)
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broken frame {i}")
            log["made"].append(i)
            log["threads"].add(threading.get_ident())
            yield i
    finally:
        log["closed"] = True


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_yields_everything_in_order(depth):
    log: dict = {}
    assert list(read_ahead(counting(7, log), depth)) == list(range(7))
    assert log["closed"]
    main = threading.get_ident()
    assert (log["threads"] == {main}) == (depth == 0)      # depth 0 is inline; otherwise another thread makes them


def test_the_next_item_is_made_while_the_consumer_holds_this_one():
    made_second = threading.Event()

    def source():
        yield 0
        made_second.set()
        yield 1

    stream = read_ahead(source(), 2)
    assert next(stream) == 0
    # inline iteration would make item 1 only when asked for it; read ahead makes it now
    assert made_second.wait(timeout=10)
    assert list(stream) == [1]


def test_an_error_arrives_in_its_place_and_in_the_consumers_thread():
    log: dict = {}
    got = []
    with pytest.raises(ValueError, match="broken frame 3"):
        for i in read_ahead(counting(10, log, fail_at=3), 2):
            got.append(i)
    assert got == [0, 1, 2] and log["closed"]


def test_stops_early_closes_the_source_and_ends_the_thread():
    log: dict = {}
    before = {t.name for t in threading.enumerate()}
    stream = read_ahead(counting(1000, log), 3)
    assert [next(stream) for _ in range(4)] == [0, 1, 2, 3]
    stream.close()
    assert log["closed"]                                   # the source's finally ran before close() returned
    assert len(log["made"]) <= 4 + 3 + 1                   # never more than depth (+ the one in hand) ahead
    assert "v2v-read-ahead" not in {t.name for t in threading.enumerate()} - before


def test_a_consumer_error_closes_the_source_too():
    log: dict = {}
    with pytest.raises(RuntimeError, match="interrupted"):
        for i in read_ahead(counting(1000, log), 2):
            if i == 5:
                raise RuntimeError("interrupted")
    assert log["closed"] and len(log["made"]) <= 5 + 2 + 2


def held_source(n: int, log: dict, fail_at: int | None = None):
    """A sketch source whose stream holds a resource (an extractor's worker) until it is closed, and fails with
    a SourceError (a corrupt video) at frame ``fail_at``."""
    import numpy as np
    import torch

    from v2v.sources.base import SourceError, SourceFrame, SourceVideo

    def stream(start, stop, shots, only):
        log["open"] = True
        try:
            for i in range(start, stop):
                if i == fail_at:
                    raise SourceError(f"frame {i} is corrupt")
                yield SourceFrame(i, torch.full((3, 16, 16), i / n), np.zeros((16, 16, 3), np.uint8))
        finally:
            log["open"] = False

    return SourceVideo(kind="sketch", input_nc=3, label_nc=0, height=16, width=16, fps=10.0, num_frames=n,
                       stream=stream)


@pytest.fixture
def tiny_model():
    from v2v.model.config import preset
    from v2v.model.generator import Vid2VidGenerator

    return Vid2VidGenerator(preset("tiny", input_nc=3)).eval()


@pytest.mark.parametrize("ahead", [0, 2])
def test_an_interrupt_releases_the_source_at_once(tmp_path, tiny_model, ahead):
    """ComfyUI's interrupt raises from ``progress``; the source (and the read-ahead thread) is let go before
    the error reaches the caller, although the error's traceback still holds the generating frames."""
    from v2v.pipeline import generate_to_file

    log: dict = {}

    def progress(done, total):
        if done == 3:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted") as caught:
        generate_to_file(tiny_model, held_source(40, log), tmp_path / "out.mp4", progress=progress, read_ahead=ahead)
    assert caught.value.__traceback__ is not None and log["open"] is False
    assert not [t for t in threading.enumerate() if t.name in ("v2v-read-ahead", "v2v-write-behind")]
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("ahead", [0, 2])
def test_a_source_failing_part_way_keeps_the_frames_before_it(tmp_path, tiny_model, ahead):
    import torch

    from v2v.media.video_io import read_frames
    from v2v.pipeline import PartialOutput, generate, generate_to_file

    log: dict = {}
    source = held_source(12, log)
    with torch.no_grad():
        inline = [g.frame for g in generate(tiny_model, source, read_ahead=0)]
        ahead_frames = [g.frame for g in generate(tiny_model, source, read_ahead=ahead)]
    assert all(torch.equal(a, b) for a, b in zip(inline, ahead_frames)) and len(ahead_frames) == 12

    with pytest.raises(PartialOutput, match="frame 5 is corrupt") as caught:
        generate_to_file(tiny_model, held_source(12, log, fail_at=5), tmp_path / "part.mp4", read_ahead=ahead)
    assert caught.value.result.frames == 5 and len(list(read_frames(tmp_path / "part.mp4"))) == 5
    assert log["open"] is False


# ---- WriteBehind ------------------------------------------------------------------------------------------------
def slow_sink(log: list, *, delay: float = 0.01, fail_at: int | None = None, gate: threading.Event | None = None):
    def consume(item):
        if gate is not None:
            gate.wait(5)
        time.sleep(delay)
        if item == fail_at:
            raise OSError(f"disk full at {item}")
        log.append((item, threading.get_ident()))
    return consume


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_write_behind_consumes_everything_in_order_before_the_block_ends(depth):
    log: list = []
    with WriteBehind(slow_sink(log), depth) as sink:
        for i in range(12):
            sink.put(i)
    assert [i for i, _ in log] == list(range(12))                  # all of them, in order, when the block ends
    threads = {t for _, t in log}
    assert (threads == {threading.get_ident()}) == (depth == 0)      # depth 0 inline, else in the second thread
    assert not [t for t in threading.enumerate() if t.name == "v2v-write-behind"]


def test_write_behind_is_bounded():
    """A stalled consumer holds the producer after ``depth`` waiting items (and the one in its hands)."""
    log: list = []
    gate = threading.Event()
    sink = WriteBehind(slow_sink(log, delay=0, gate=gate), 2)
    put = []

    def produce():
        with sink:
            for i in range(10):
                sink.put(i)
                put.append(i)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.3)
    assert len(put) == 3 and log == []         # 1 taken by the stalled consumer + 2 queued, then the producer waits
    gate.set()
    producer.join(5)
    assert [i for i, _ in log] == list(range(10))


def test_a_consumer_error_reaches_the_producer_and_nothing_after_it_is_written():
    log: list = []
    with pytest.raises(OSError, match="disk full at 3"):
        with WriteBehind(slow_sink(log, fail_at=3), 2) as sink:
            for i in range(50):
                sink.put(i)
    assert [i for i, _ in log] == [0, 1, 2]
    with pytest.raises(OSError, match="disk full at 3"):       # also when it fails after the last put
        with WriteBehind(slow_sink([], fail_at=3), 8) as sink:
            for i in range(5):
                sink.put(i)


def test_an_error_in_the_block_drops_what_waits_and_stops_the_thread():
    log: list = []
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(slow_sink(log, delay=0.05), 8) as sink:
            for i in range(8):
                sink.put(i)
            raise KeyboardInterrupt
    written = len(log)
    assert written < 8 and not [t for t in threading.enumerate() if t.name == "v2v-write-behind"]
    time.sleep(0.2)
    assert len(log) == written                 # nothing is written once the block has been left


def test_write_behind_refuses_items_outside_its_block():
    sink = WriteBehind(slow_sink([]), 2)
    with pytest.raises(RuntimeError, match="outside its 'with' block"):
        sink.put(1)


def test_the_encoder_behind_writes_the_same_video_and_keeps_a_part_made_before_a_failure(tmp_path, tiny_model):
    from v2v.media.video_io import read_frames
    from v2v.pipeline import PartialOutput, generate_to_file

    videos = {}
    for behind in (0, 3):
        result = generate_to_file(tiny_model, held_source(12, {}), tmp_path / f"all{behind}.mp4", write_behind=behind)
        videos[behind] = list(read_frames(tmp_path / f"all{behind}.mp4"))
        assert result.frames == 12 and len(videos[behind]) == 12 and result.stats.seconds > 0
        with pytest.raises(PartialOutput, match="frame 7 is corrupt") as caught:
            generate_to_file(tiny_model, held_source(12, {}, fail_at=7), tmp_path / "part.mp4", write_behind=behind)
        assert caught.value.result.frames == 7 and len(list(read_frames(tmp_path / "part.mp4"))) == 7
        assert not [t for t in threading.enumerate() if t.name == "v2v-write-behind"]
    assert all((a == b).all() for a, b in zip(videos[0], videos[3]))


def test_the_writers_failure_part_way_keeps_the_frames_it_wrote(tmp_path, tiny_model, monkeypatch):
    """An encoder error in the second thread stops the run; the frames written before it are finished into the
    file, as for a source that fails part-way."""
    from v2v.media import video_io
    from v2v.media.video_io import VideoError, read_frames
    from v2v.pipeline import PartialOutput, generate_to_file

    write = video_io.VideoWriter.write

    def failing(self, frame):
        if self.count == 4:
            raise VideoError("the disk is full")
        write(self, frame)

    monkeypatch.setattr(video_io.VideoWriter, "write", failing)
    with pytest.raises(PartialOutput, match="the disk is full") as caught:
        generate_to_file(tiny_model, held_source(12, {}), tmp_path / "part.mp4", write_behind=3)
    assert caught.value.result.frames == 4 and len(list(read_frames(tmp_path / "part.mp4"))) == 4
