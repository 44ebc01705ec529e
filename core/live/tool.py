"""The live settings of a tool: read from and saved to its typed settings."""

from __future__ import annotations

from core.audit import Actor
from core.errors import StudioError
from core.inspect.models import load_tool_models
from core.live.settings import LiveConfig
from core.studio import Studio
from core.tool_settings import change_settings, tool_settings


def live_config(studio: Studio, tool_name: str) -> LiveConfig:
    """The tool's live options and the thresholds / bands its active models decide with (the calibrated
    ones where the user set none)."""
    settings = tool_settings(studio, tool_name)
    try:
        models = load_tool_models(studio, tool_name).models
    except StudioError:  # no usable model yet: the page says why; the settings still open
        models = ()
    return LiveConfig({m.method: m.threshold for m in models}, {m.method: m.review_band for m in models},
                      settings.live).validated()


def save_live_config(studio: Studio, tool_name: str, config: LiveConfig, actor: Actor,
                     signature_password: str | None = None) -> None:
    """Save the live options and the on-screen thresholds and bands on the tool (audited); they take
    effect everywhere without retraining."""
    changes: dict[str, object] = {f"threshold.{m}": v for m, v in config.thresholds.items()}
    changes.update({f"review_band.{m}": v for m, v in config.review_bands.items()})
    changes.update({f"live.{name}": value for name, value in vars(config.options).items()})
    change_settings(studio, tool_name, actor, changes, signature_password)
