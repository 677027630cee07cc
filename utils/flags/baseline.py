"""Production's configs for a context outside any online experiment (an offline baseline).

The served variation is what targeting gives the context with every experiment rollout
removed, evaluated by the same SDK on a copy of the flag file; an online experiment's
bucketing never decides an offline experiment's baseline.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils.flags.client import (
    AGENT_CONFIG_KEYS,
    DEFAULT_CONFIGS,
    AgentConfig,
    ConfigFlags,
    build_context,
)
from utils.flags.flag_file import without_experiment_rollouts
from utils.settings import Settings


class BaselineError(RuntimeError):
    """The baseline cannot be read for this context."""


@dataclass(frozen=True)
class Baseline:
    configs: dict[str, AgentConfig]
    source: str  # where the configs came from, for people
    missing: str | None = None  # why they are only the built-in defaults


def production_baseline(settings: Settings, user_key: str,
                        attributes: Mapping[str, Any]) -> Baseline:
    """Every agent's config served to the context, ignoring experiment rollouts."""
    context = build_context(user_key, attributes)
    if settings.ld_mode:
        flags = ConfigFlags(settings)
        try:
            configs = {k: flags.agent_config(k, context) for k in AGENT_CONFIG_KEYS}
        finally:
            flags.close()
        bucketed = [k for k, c in configs.items() if c.in_experiment]
        if bucketed:
            raise BaselineError(
                f"the context {dict(attributes)} is in an online experiment on "
                f"{', '.join(bucketed)} in LaunchDarkly, which serves it an experiment arm; "
                "pass a --context outside the experiment's audience")
        return Baseline(configs, f"LaunchDarkly ({settings.LD_PROJECT_KEY}/"
                                 f"{settings.LD_ENVIRONMENT})")
    path = settings.flags_path
    if not path.exists():
        configs = dict(DEFAULT_CONFIGS)
        return Baseline(configs, "built-in defaults",
                        missing=f"flag file {path} does not exist (run `python -m "
                                "bootstrap.create_configs`), so the baseline would be the "
                                "built-in defaults")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaselineError(f"cannot read the flag file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise BaselineError(f"flag file {path} is not a JSON object")
    with tempfile.TemporaryDirectory(prefix="baseline-flags-") as folder:
        copy = Path(folder) / "flags.json"
        copy.write_text(json.dumps(without_experiment_rollouts(document)), encoding="utf-8")
        flags = ConfigFlags(settings.model_copy(update={"LOCAL_FLAGS_PATH": copy}))
        try:
            configs = {k: flags.agent_config(k, context) for k in AGENT_CONFIG_KEYS}
        finally:
            flags.close()
    broken = [k for k, c in configs.items() if c.source != "flags"]
    if broken:
        raise BaselineError(f"flag file {path} serves no usable variation of "
                            f"{', '.join(broken)} to this context (see the log)")
    return Baseline(configs, f"flag file {path} (experiment rollouts ignored)")
