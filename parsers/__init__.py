"""Pure decoders for the payloads the userscripts upload (no aiohttp, no I/O)."""
from __future__ import annotations

from parsers.errors import ParseError
from parsers.group import GroupMember, decode_group
from parsers.profile import Caracs, Profile, decode_profile
from parsers.view import Items, Monster, Obj, Place, Player, Resource, Tile, decode_view

__all__ = [
    "Caracs",
    "GroupMember",
    "Items",
    "Monster",
    "Obj",
    "ParseError",
    "Place",
    "Player",
    "Profile",
    "Resource",
    "Tile",
    "decode_group",
    "decode_profile",
    "decode_view",
]
