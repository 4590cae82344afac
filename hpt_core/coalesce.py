"""Request coalescing: concurrent scoring calls on one model merged into one batched forward pass.

A server answers several users at once. Scored one by one, their texts run as several small forward passes side by
side, each asking for every core (on a 2-core CPU, 4 requests ask for 8 compute threads). ``ScoreCoalescer`` lets one
call run at a time and hands the calls that arrived meanwhile to the next run as one batch: one forward pass for all of
them, no added wait when the server is idle (a lone call runs at once), and a failure stays with the call that caused
it (a failed batch is re-run call by call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ScoreFn", "ScoreCoalescer"]

# (texts, lengths or None) -> (N, C) scores; fills ``lengths`` with each text's wordpiece count when given
ScoreFn = Callable[[list[str], "list[int] | None"], np.ndarray]


@dataclass
class _Call:
    texts: list[str]
    scores: np.ndarray | None = None
    lengths: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class ScoreCoalescer:
    """Wraps ``score`` so that concurrent calls are batched. Calls of more than ``max_texts`` texts (a file) run on
    their own, unbatched, so they never hold the small interactive ones up behind them."""

    def __init__(self, score: ScoreFn, max_texts: int = 64) -> None:
        self._score = score
        self.max_texts = max_texts
        self._cond = threading.Condition()
        self._queue: list[_Call] = []
        self._busy = False
        self.runs = 0  # forward runs made, and calls they answered (the batching ratio is calls / runs)
        self.calls = 0

    def __call__(self, texts: list[str], lengths: list[int] | None = None) -> np.ndarray:
        """Scores ``(len(texts), C)``, as ``score(texts, lengths)`` would return them."""
        if len(texts) > self.max_texts:
            return self._score(texts, lengths)
        call = _Call(list(texts))
        with self._cond:
            self._queue.append(call)
        while True:
            with self._cond:
                while self._busy and not call.done:
                    self._cond.wait()
                if call.done:
                    break
                self._busy = True  # this thread runs the next batch (its own call is in it or in a later one)
                batch = self._take()
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if call.error is not None:
            raise call.error
        if lengths is not None:
            lengths[:] = call.lengths
        assert call.scores is not None
        return call.scores

    def _take(self) -> list[_Call]:
        """The waiting calls, oldest first, up to ``max_texts`` texts (always at least one call). Under the lock."""
        batch, total = [], 0
        while self._queue and (not batch or total + len(self._queue[0].texts) <= self.max_texts):
            call = self._queue.pop(0)
            batch.append(call)
            total += len(call.texts)
        return batch

    def _run(self, batch: list[_Call]) -> None:
        """Score every call of ``batch`` in one forward run; if that fails, each call on its own."""
        try:
            texts = [text for call in batch for text in call.texts]
            lengths: list[int] = []
            scores = self._score(texts, lengths)
            start = 0
            for call in batch:
                end = start + len(call.texts)
                call.scores, call.lengths = scores[start:end], lengths[start:end]
                start = end
        except Exception as error:  # noqa: BLE001 - given back to the calls, never lost
            if len(batch) == 1:
                batch[0].error = error
            else:
                for call in batch:
                    try:
                        call.scores = self._score(call.texts, call.lengths)
                    except Exception as own:  # noqa: BLE001 - as above
                        call.error = own
        finally:
            with self._cond:
                self.runs += 1
                self.calls += len(batch)
                for call in batch:
                    call.done = True
