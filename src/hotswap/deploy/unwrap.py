"""Turn a nursery's exception group back into the one exception that matters."""

from __future__ import annotations

import trio


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(leaves(exc))
        else:
            out.append(exc)
    return out


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of `group` that is not a Cancelled, else the first Cancelled.

    Small task groups of the deployer fail for one reason (a readiness error, a lost
    events stream); the others are cancelled because of it.
    """
    found = leaves(group)
    for exc in found:
        if not isinstance(exc, trio.Cancelled):
            return exc
    return found[0]
