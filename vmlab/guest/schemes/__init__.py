"""One class per paging scheme a guest kernel runs under (see `native.NativeScheme`)."""

from __future__ import annotations

from vmlab.guest.schemes.native import NativeScheme
from vmlab.guest.schemes.nested import NestedScheme
from vmlab.guest.schemes.pv import PVScheme
from vmlab.guest.schemes.shadow import ShadowScheme

SCHEME_CLASSES: dict[str, type[NativeScheme]] = {
    "native": NativeScheme, "pv": PVScheme, "shadow": ShadowScheme, "nested": NestedScheme}
SCHEMES = tuple(SCHEME_CLASSES)

__all__ = ["SCHEME_CLASSES", "SCHEMES", "NativeScheme", "PVScheme", "ShadowScheme", "NestedScheme"]
