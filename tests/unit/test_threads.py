"""v2v.threads.ThreadTuner: the network's CPU threads, measured against one fewer while the source is extracted
beside it; the faster kept, the count restored at the end."""
from __future__ import annotations

import pytest
import torch

from test_prefetch import held_source, tiny_model  # noqa: F401  (a fixture)
from v2v.threads import ThreadTuner


class Machine:
    """A fake clock and thread setting: each frame takes ``seconds[threads]``."""

    def __init__(self, threads: int, seconds: dict[int, float]) -> None:
        self.threads, self.seconds, self.now, self.calls = threads, seconds, 0.0, []

    def set(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def run(self, tuner: ThreadTuner, frames: int) -> None:
        for _ in range(frames):
            self.now += self.seconds[self.threads]
            tuner.tick()


def tuner_on(machine: Machine, **kw) -> ThreadTuner:
    return ThreadTuner(clock=lambda: machine.now, get_threads=lambda: machine.threads, set_threads=machine.set,
                       user_set=False, **kw)


@pytest.mark.parametrize("fewer, kept", [(0.8, 1), (1.2, 2), (0.97, 2)])     # 1.2: not clearly slower
def test_keeps_the_faster_count(fewer, kept):
    """One thread fewer kept only when its frames are faster by more than the margin (5 %)."""
    m = Machine(2, {2: 1.0, 1: fewer})
    tuner = tuner_on(m, window=4, rounds=3, skip=2)
    m.run(tuner, 2 + 4 * 6 - 1)
    assert tuner.chosen is None                            # still measuring: three windows of each
    m.run(tuner, 1)
    assert tuner.chosen == kept and m.threads == kept
    assert m.calls == [2, 1, 2, 1, 2, 1, kept]             # alternating windows, then the choice
    m.run(tuner, 50)
    assert len(m.calls) == 7                               # decided once
    tuner.close()
    assert m.threads == 2


def test_clearly_slower_stops_at_the_first_pair():
    """Fewer threads 1.5x slower in the first pair of windows: all kept at once, no more frames at one."""
    m = Machine(2, {2: 1.0, 1: 1.5})
    tuner = tuner_on(m, window=4, rounds=3, skip=2)
    m.run(tuner, 2 + 4 * 2)
    assert tuner.chosen == 2 and m.calls == [2, 1, 2]


def test_a_slow_window_does_not_decide():
    """The median window decides: one window slowed by a shot's float32 frames does not turn the choice."""
    m = Machine(2, {2: 1.0, 1: 0.8})
    tuner = tuner_on(m, window=4, rounds=3, skip=0)
    m.run(tuner, 12)
    m.seconds[1] = 3.0                                     # the second one-thread window is slow
    m.run(tuner, 4)
    m.seconds[1] = 0.8
    m.run(tuner, 8)
    assert tuner.chosen == 1 and m.calls == [2, 1, 2, 1, 2, 1, 1]


@pytest.mark.parametrize("threads, user_set", [(1, False), (4, True)])
def test_nothing_to_tune(threads, user_set):
    """One thread has no fewer to try; a count the user set (OMP_NUM_THREADS) is theirs."""
    m = Machine(threads, {threads: 1.0, threads - 1: 0.1})
    tuner = ThreadTuner(clock=lambda: m.now, get_threads=lambda: m.threads, set_threads=m.set, user_set=user_set)
    m.run(tuner, 100)
    tuner.close()
    assert tuner.chosen == threads and m.calls == [threads] and m.threads == threads


def test_the_user_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert ThreadTuner(get_threads=lambda: 2, set_threads=lambda n: None).chosen == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert ThreadTuner(get_threads=lambda: 2, set_threads=lambda n: None).chosen is None


@pytest.mark.parametrize("interrupt", [False, True])
def test_generate_restores_the_thread_count(tiny_model, interrupt, monkeypatch):
    """generate() on the CPU with the source read ahead tunes, records the count in its stats, and leaves
    torch's thread count as it found it, also when the run is interrupted (at frame 12: one thread, measuring)."""
    from v2v.pipeline import RunStats, generate

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(2)                           # the autouse fixture's one thread is restored after
    before = torch.get_num_threads()
    stats = RunStats()

    def progress(done, total):
        if interrupt and done == 12:
            raise RuntimeError("interrupted")

    with torch.no_grad():
        try:
            frames = list(generate(tiny_model, held_source(60, {}), read_ahead=2, stats=stats, progress=progress))
            assert len(frames) == 60
        except RuntimeError as e:
            assert interrupt and "interrupted" in str(e)
    assert torch.get_num_threads() == before
    if not interrupt:
        assert stats.threads in {1, 2}                                # decided within the 60 frames
