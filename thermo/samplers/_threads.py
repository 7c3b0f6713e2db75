"""The thread count a sampler's kernels run with: fixed, or tuned during the run.

Every CPU kernel of thermo gives the same bits for any thread count: parallel
chunks are fixed by the work buffers and the noise blocks, not by the number
of threads that run them.  So the count only changes the speed, and the
fastest count depends on the problem and on the machine *at that moment*.
Small problems gain little from threads (a parallel region costs a few µs,
and data written on one core must move to the other), and on a shared
virtual machine the second core can be slow or busy for minutes: on the
2-vCPU development machine a batch-100 MNIST perceptron BAOAB step measured
117 µs on 2 threads and 184 µs on 1 in one minute, and 181 µs on 2 against
126 µs on 1 a few minutes later (``benchmarks/step_phases.py``).

``threads="auto"`` in :func:`thermo.sample` therefore times the run's own
chunks (:class:`ThreadTuner`): after a first, untimed chunk (it may include
compilation), one short chunk per candidate count (1, 2, 4, ... up to
Numba's current count), then the fastest count, and after
:data:`REPROBE_EVERY` regular chunks one short chunk on another candidate
(in turn), because the fastest count can change while the run goes.  A
short chunk has ``1/PROBE_FRACTION`` of a regular chunk's steps.  Each probe
that leaves the fastest count unchanged doubles the wait before the next
one, up to ``MAX_BACKOFF`` times REPROBE_EVERY regular chunks; a change of
the fastest count resets it.  So probes run 1/17 of the steps at first and
about 1/129 once the choice is stable (REPROBE_EVERY = PROBE_FRACTION = 4,
MAX_BACKOFF = 8); with chunks of ~0.5 s a change of the machine's state is
noticed within ~16 s.  The tuner of a (potential, method) pair lives
as long as the potential (:func:`tuner_for`): a run continued in several
calls, or run again, goes on from what the earlier calls measured instead of
probing from scratch.
"""
from __future__ import annotations

import weakref

import numba
import numpy as np

__all__ = ["AUTO", "REPROBE_EVERY", "PROBE_FRACTION", "MAX_BACKOFF", "thread_ladder",
           "check_threads", "ThreadTuner", "tuner_for"]

AUTO = "auto"
REPROBE_EVERY = 4
"""Regular chunks before a probe of another thread count, at first and after the
fastest count changed (each probe that changes nothing doubles the wait)."""
PROBE_FRACTION = 4
"""A probe chunk has ``1/PROBE_FRACTION`` of the steps of a regular chunk."""
MAX_BACKOFF = 8
"""Probes that change nothing stretch the wait up to this many times REPROBE_EVERY."""


def thread_ladder(maximum):
    """Candidate thread counts: 1, 2, 4, ... below ``maximum``, and ``maximum``.

    Parameters
    ----------
    maximum : int
        The largest count (>= 1).

    Returns
    -------
    list of int

    Examples
    --------
    >>> thread_ladder(1), thread_ladder(2), thread_ladder(6)
    ([1], [1, 2], [1, 2, 4, 6])
    """
    counts = []
    n = 1
    while n < maximum:
        counts.append(n)
        n *= 2
    counts.append(int(maximum))
    return counts


def check_threads(value):
    """Validate the ``threads`` option of :func:`thermo.sample`.

    Parameters
    ----------
    value : None, int or "auto"
        None: Numba's current count; an int: that many threads (at most
        ``numba.config.NUMBA_NUM_THREADS``); "auto": tuned (module docstring).

    Returns
    -------
    None, int or "auto"

    Examples
    --------
    >>> check_threads(None), check_threads("auto"), check_threads(1)
    (None, 'auto', 1)
    """
    if value is None or (isinstance(value, str) and value == AUTO):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"threads must be None, an int or 'auto', got {value!r}")
    value = int(value)
    maximum = numba.config.NUMBA_NUM_THREADS
    if not 1 <= value <= maximum:
        raise ValueError(f"threads must be between 1 and {maximum} (NUMBA_NUM_THREADS), "
                         f"got {value}")
    return value


class ThreadTuner:
    """Chooses the thread count of each chunk from the run's own timings.

    Parameters
    ----------
    maximum : int
        Largest thread count to use (Numba's count when the run starts).
    reprobe_every : int
        Regular chunks before the next probe of another count, at first and
        after each change of the fastest count (doubled by each probe that
        changes nothing, up to ``MAX_BACKOFF`` times).

    Examples
    --------
    >>> tuner = ThreadTuner(2, reprobe_every=2)
    >>> tuner.choose()                # first chunk: untimed warm-up
    (2, False)
    >>> tuner.report(2, 1000, 1.0)
    >>> tuner.choose()                # one probe per candidate
    (1, True)
    >>> tuner.report(1, 250, 0.1)
    >>> tuner.choose()
    (2, True)
    >>> tuner.report(2, 250, 0.2)
    >>> tuner.seconds_per_step
    {1: 0.0004, 2: 0.0008}
    >>> [tuner.choose() for _ in range(3)]   # the faster count, then a probe
    [(1, False), (1, False), (2, True)]
    """

    def __init__(self, maximum, reprobe_every=REPROBE_EVERY):
        self.candidates = thread_ladder(int(maximum))
        self.reprobe_every = int(reprobe_every)
        self.seconds_per_step = {}
        self.chunks = 0
        self._regular = 0           # regular chunks since the last probe
        self._wait = self.reprobe_every
        self._probing = None        # the count of the chunk being probed
        self._rotation = 0

    @property
    def best(self):
        """The count with the least time per step so far (None before any)."""
        if not self.seconds_per_step:
            return None
        return min(self.seconds_per_step, key=lambda n: (self.seconds_per_step[n], n))

    def choose(self):
        """``(threads, probe)`` for the next chunk; ``probe``: make it short."""
        self.chunks += 1
        if self.chunks == 1 or len(self.candidates) == 1:
            return self.candidates[-1], False
        for n in self.candidates:
            if n not in self.seconds_per_step:
                self._probing = None        # a first measurement, not a re-probe
                return n, True
        best = self.best
        if self._regular >= self._wait:
            others = [n for n in self.candidates if n != best]
            n = others[self._rotation % len(others)]
            self._rotation += 1
            self._regular = 0
            self._probing = n
            return n, True
        self._regular += 1
        self._probing = None
        return best, False

    def report(self, threads, n_steps, seconds):
        """Record a chunk's time; the first (warm-up) chunk is ignored.

        The latest time of each count replaces the earlier one: the machine's
        state, not a long average, decides.
        """
        if self.chunks <= 1 or n_steps <= 0:
            return
        before = self.best
        self.seconds_per_step[int(threads)] = seconds / n_steps
        if before is not None and self.best != before:
            self._wait = self.reprobe_every         # the machine changed: look more often
        elif self._probing is not None and self._probing != self.best:
            self._wait = min(2 * self._wait, MAX_BACKOFF * self.reprobe_every)
        self._probing = None


_TUNERS = weakref.WeakKeyDictionary()


def tuner_for(potential, method, maximum):
    """The :class:`ThreadTuner` of earlier ``threads="auto"`` runs of ``method``
    on ``potential`` with the same ``maximum``, or a new one.

    Parameters
    ----------
    potential : object
        The run's potential (kept only through a weak reference).
    method : str
        The sampler's name.
    maximum : int
        Largest thread count.

    Returns
    -------
    ThreadTuner

    Examples
    --------
    >>> class Potential:
    ...     pass
    >>> potential = Potential()
    >>> tuner_for(potential, "baoab", 2) is tuner_for(potential, "baoab", 2)
    True
    >>> tuner_for(potential, "baoab", 2) is tuner_for(potential, "sgld", 2)
    False
    """
    try:
        per_method = _TUNERS.setdefault(potential, {})
    except TypeError:                   # not weakly referenceable: no memory
        return ThreadTuner(maximum)
    tuner = per_method.get(method)
    if tuner is None or tuner.candidates[-1] != int(maximum):
        tuner = per_method[method] = ThreadTuner(maximum)
    return tuner
