"""Checks around a LaunchDarkly sync: model configs before it, what the SDK is served after.

`GET /api/v2/projects/{p}/ai-configs/model-configs` answers a bare list of `ModelConfig`
(launchdarkly/api-client-python ``docs/AIConfigsApi.md``, ``docs/ModelConfig.md``:
key, name, id, provider, global); ``docs/ModelConfigPost.md`` creates one (key, name, id,
provider). A variation's served value (the targeting variations' `value`, which is what the
SDK receives) is read with the app's own flag-layer reader, so a model, provider or custom
parameter the app would not find fails the bootstrap instead of silently serving defaults.
"""

from __future__ import annotations

import json
from typing import Any

from bootstrap.launchdarkly_backend import LaunchDarklySync, targeting_key
from bootstrap.launchdarkly_client import LaunchDarklyError
from bootstrap.manifest import VariationSpec
from utils.flags.client import MalformedVariation, describe_served
from utils.providers import PROVIDERS, model_config_key


def model_config_body(variation: VariationSpec) -> dict[str, Any]:
    """The POST body of the model config a variation's `modelConfigKey` names."""
    return {"key": model_config_key(variation.provider, variation.model),
            "name": variation.model, "id": variation.model,
            "provider": PROVIDERS[variation.provider].label, "tags": ["bootstrap"]}


def check_model_configs(sync: LaunchDarklySync, variations: list[VariationSpec], *,
                        create: bool = False) -> None:
    """Every `modelConfigKey` must name a model config of the project: created when `create`,
    otherwise a `LaunchDarklyError` says exactly what to create."""
    path = f"/api/v2/projects/{sync.project}/ai-configs/model-configs"
    have = {m.get("key"): m for m in sync.client.paginate(path)}
    wanted = {model_config_key(v.provider, v.model): v for v in variations}
    missing = {key: v for key, v in sorted(wanted.items()) if key not in have}
    no_provider = sorted(k for k in wanted if k in have and not have[k].get("provider"))
    if no_provider:
        raise LaunchDarklyError(
            f"model configs {no_provider} of project {sync.project} have no provider, so "
            "their variations are served without one and the app falls back to its built-in "
            "configs; give each its provider in LaunchDarkly (AI Configs > Model configs)")
    if not missing:
        return
    if create:
        for key, variation in missing.items():
            sync._change(f"create model config {key}", "POST", path,
                         model_config_body(variation))
        return
    bodies = "\n".join(f"  POST {path}\n  {json.dumps(model_config_body(v))}"
                       for v in missing.values())
    raise LaunchDarklyError(
        f"project {sync.project} has no model config {sorted(missing)}, which the manifest's "
        "variations name as modelConfigKey; without one LaunchDarkly serves no provider. "
        "Run again with --create-model-configs, or create them (AI Configs > Model configs, "
        f"or the REST API):\n{bodies}")


def verify_served(sync: LaunchDarklySync, config_key: str,
                  variations: list[VariationSpec]) -> None:
    """Read the config's targeting back and check what the SDK will be served per variation:
    model, provider, model parameters, custom parameters and tools, as the app reads them."""
    path = f"/api/v2/projects/{sync.project}/ai-configs/{config_key}/targeting"
    targeting = sync.client.request("GET", path) or {}
    served = {targeting_key(v): v.get("value") for v in targeting.get("variations", [])}
    problems = []
    for spec in variations:
        if spec.key not in served:
            problems.append(f"{spec.key}: not among the targeting variations")
            continue
        try:
            got = describe_served(served[spec.key])
        except MalformedVariation as exc:
            problems.append(f"{spec.key}: {exc} (model config "
                            f"{model_config_key(spec.provider, spec.model)} must exist with a "
                            "provider)")
            continue
        want = {"model": spec.model, "provider": spec.provider,
                "parameters": spec.parameters.model_dump(), "custom": spec.custom.model_dump(),
                "tools": sorted(spec.tools)}
        for field, value in want.items():
            if got[field] != value:
                problems.append(f"{spec.key}: serves {field} {got[field]!r}, the manifest says "
                                f"{value!r}")
    if problems:
        raise LaunchDarklyError(
            f"GET {path}: what the SDK will be served for {config_key} is not what the app "
            "needs (it would run other models, policies or budgets than the manifest's):\n  - "
            + "\n  - ".join(problems))
    sync.out(f"verified: {config_key} serves {len(variations)} variation(s) with their model, "
             "provider, parameters, custom parameters and tools")
