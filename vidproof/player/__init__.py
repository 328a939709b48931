"""The offline player page of an export bundle (``player.html``).

:func:`render_player` turns the exporter's player data (format ``vidproof-player/1``)
into one self-contained HTML page: no network, nothing to install.
"""

from __future__ import annotations

from .render import PLAYER_FORMAT, PlayerDataError, render_player

__all__ = ["PLAYER_FORMAT", "PlayerDataError", "render_player"]
