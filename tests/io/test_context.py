"""The interface drivers see: IoSystem provides every part of IoContext, so drivers need not import it."""

from vmlab.io.context import IoContext, Worker
from vmlab.io.system import IoSystem


def test_io_system_provides_everything_io_context_names(machine):
    hv, d, io = machine
    assert isinstance(io, IoSystem)
    for name in set(IoContext.__annotations__) | {"alloc_pages", "free_pages", "mfn", "wake", "run"}:
        assert hasattr(io, name), f"IoSystem lacks IoContext.{name}"
    assert callable(Worker.process)
