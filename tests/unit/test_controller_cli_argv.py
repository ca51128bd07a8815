"""The harnesses' `runs-controller run` command line parses into the settings they mean."""

from __future__ import annotations

import sys
from pathlib import Path

from runs_controller.app import ControllerSettings
from runs_controller.cli import _settings, build_parser
from runs_controller.testing.controller_cli import controller_run_argv


def _parsed(argv: list[str]) -> ControllerSettings:
    assert argv[:4] == [sys.executable, "-m", "runs_controller", "run"]
    args = build_parser().parse_args(argv[3:])
    return _settings(args)


def test_a_scoped_fast_lease_controller() -> None:
    settings = _parsed(
        controller_run_argv(
            kubeconfig=Path("/k/config"),
            home_namespace="home",
            namespaces="home,other",
            lease_id="rc-home",
            metrics_port=1234,
            health_port=1235,
            fast_lease=True,
            extra=["--workers=3"],
        )
    )
    assert settings.kubeconfig == Path("/k/config")
    assert settings.namespaces == ("home", "other")
    assert (settings.leader_election_namespace, settings.config_namespace) == ("home", "home")
    assert settings.leader_election_id == "rc-home"
    assert (settings.metrics_address, settings.health_address) == (
        "127.0.0.1:1234",
        "127.0.0.1:1235",
    )
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (4, 3, 0.5)
    assert settings.workers == 3


def test_defaults_watch_every_namespace_with_the_standard_lease() -> None:
    plain = _parsed(
        controller_run_argv(
            kubeconfig=Path("/k"), home_namespace="ns", metrics_port=1, health_port=2
        )
    )
    default = _settings(build_parser().parse_args(["run"]))
    assert plain.namespaces == ()
    assert plain.leader_election_id == default.leader_election_id
    assert plain.lease_duration == default.lease_duration
