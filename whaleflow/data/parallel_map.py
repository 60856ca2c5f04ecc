"""``map`` on a thread pool with a progress bar: image decoders (cv2, PIL) release the GIL,
so threads decode in parallel without the cost of processes."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

__all__ = ["parallel_map"]


@contextmanager
def _bar(enabled: bool, description: str, total: int):
    from ..progress import progress_bar

    with progress_bar(total, description, quiet=not enabled, unit="images") as bar:
        yield bar.advance


def parallel_map(fn: Callable, items: Iterable, *, workers: int = 2, progress: bool = False,
                 description: str = "") -> Iterator:
    """``map(fn, items)`` on a thread pool (decoders release the GIL), in order, with a bar."""
    items = list(items)
    if not items:
        return
    with _bar(progress, description, len(items)) as advance:
        if workers <= 1:
            for it in items:
                yield fn(it)
                advance()
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(fn, items):
                yield res
                advance()
