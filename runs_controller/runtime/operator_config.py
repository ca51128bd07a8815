"""The live operator configuration: the operator ConfigMap, read from the cache and parsed once
per version (hot reload, as the reference does). No ConfigMap means the compiled defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from runs_controller.engine.operator_config import OperatorConfig, parse_operator_config

if TYPE_CHECKING:
    from runs_controller.api.k8s import ConfigMap
    from runs_controller.runtime.cache import CacheReader

log = structlog.get_logger("runs_controller.config")

DEFAULT_CONFIG_NAME = "bobrapet-operator-config"
"""The reference operator's ConfigMap name (`--config-name`)."""


class OperatorConfigSource:
    """`current()` is the configuration now; cheap to call on every reconcile."""

    def __init__(
        self, reader: CacheReader[ConfigMap] | None, namespace: str = "", name: str = ""
    ) -> None:
        self._reader = reader
        self.namespace = namespace
        self.name = name
        self._version: str | None = None
        self._config = OperatorConfig()

    @classmethod
    def defaults(cls) -> OperatorConfigSource:
        return cls(None)

    def current(self) -> OperatorConfig:
        found = self._reader.get(self.namespace, self.name) if self._reader is not None else None
        version = found.metadata.resource_version if found and found.metadata else None
        if version != self._version:
            self._version = version
            self._config, problems = parse_operator_config(found.data if found else None)
            for problem in problems:
                log.warning(
                    "operator_config_invalid_value",
                    configmap=f"{self.namespace}/{self.name}",
                    problem=problem,
                )
            log.info(
                "operator_config_loaded",
                configmap=f"{self.namespace}/{self.name}",
                found=found is not None,
                resource_version=version,
            )
        return self._config


__all__ = ["DEFAULT_CONFIG_NAME", "OperatorConfigSource"]
