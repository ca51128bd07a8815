"""KubeClient against the real kube-apiserver: CRUD, server-side apply, errors, lists, watches.

Watch facts this apiserver shows (and these tests pin down):
- a watch from a resourceVersion older than the watch cache's window answers HTTP 200 and then
  one ERROR event carrying Status{code: 410, reason: "Expired", message: "too old resource
  version: 1 (N)"}; it is not an HTTP 410. (For a kind whose cache started at an empty etcd,
  RV "1" is still inside the window and is replayed instead, so the test uses a CRD kind.)
- `sendInitialEvents=true` ends the initial ADDED burst with a BOOKMARK annotated
  `k8s.io/initial-events-end`; periodic bookmarks arrive only when bookmarks were allowed.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
import sys
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from kubernetes_asyncio.config import incluster_config
from prometheus_client import CollectorRegistry

from runs_controller.api.codec import MicroTime
from runs_controller.api.k8s import ConfigMap, Lease, LeaseSpec
from runs_controller.api.meta import ObjectMeta, Resource, WatchEvent
from runs_controller.api.refs import StepRunReference
from runs_controller.api.runs.effectclaim import (
    EFFECT_CLAIM,
    EffectClaim,
    EffectClaimSpec,
    EffectClaimStatus,
)
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import ClusterConfig, StaticToken, load_incluster, load_kubeconfig
from runs_controller.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    TransportTimeout,
    Unauthorized,
)
from runs_controller.kube.resources import CONFIG_MAPS, LEASES, ResourceType
from runs_controller.kube.throttle import TokenBucket
from runs_controller.kube.watch import (
    ADDED,
    BOOKMARK,
    DELETED,
    ERROR,
    INITIAL_EVENTS_END,
    MODIFIED,
    WatchStream,
    event_error,
    event_object,
)
from runs_controller.observability.metrics import RestClientMetrics
from runs_controller.testing import ControlPlane
from runs_controller.testing.binaries import read_pinned_versions
from runs_controller.testing.kubeconfig import render_kubeconfig, write_kubeconfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

EFFECT_CLAIMS = ResourceType.from_info(EFFECT_CLAIM)
SELF_SUBJECT_REVIEWS = ResourceType(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", namespaced=False
)
MANAGER = "runs-controller-test"


class UserInfo(Resource, kw_only=True, frozen=True):
    status: dict[str, Any] | None = None


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, labels=labels), data=data)


def claim(name: str, effect_key: str = "deliver") -> EffectClaim:
    return EffectClaim(
        metadata=ObjectMeta(name=name),
        spec=EffectClaimSpec(step_run_ref=StepRunReference(name="step-a"), effect_key=effect_key),
    )


def meta(obj: Resource) -> ObjectMeta:
    assert obj.metadata is not None
    return obj.metadata


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def config(kubeconfig: Path) -> ClusterConfig:
    return await load_kubeconfig(kubeconfig)


@pytest.fixture
async def client(config: ClusterConfig, registry: CollectorRegistry) -> AsyncIterator[KubeClient]:
    async with KubeClient(config, metrics=RestClientMetrics.create(registry)) as kube:
        yield kube


async def next_event(stream: WatchStream, *, skip_bookmarks: bool = True) -> WatchEvent[Any]:
    with anyio.fail_after(30):
        async for event in stream:
            if skip_bookmarks and event.type == BOOKMARK:
                continue
            return event
    raise AssertionError("the watch ended before the expected event")


# ---- CRUD ---------------------------------------------------------------------------------


async def test_server_version(client: KubeClient) -> None:
    assert (await client.server_version()) == read_pinned_versions().kubernetes


async def test_configmap_crud_with_compare_and_swap(client: KubeClient, namespace: str) -> None:
    created = await client.create(
        CONFIG_MAPS, configmap("crud", {"a": "1"}), namespace, type=ConfigMap
    )
    assert created.api_version == "v1"
    assert created.kind == "ConfigMap"
    assert meta(created).uid

    fetched = await client.get(CONFIG_MAPS, "crud", namespace, type=ConfigMap)
    assert fetched.data == {"a": "1"}
    assert meta(fetched).resource_version == meta(created).resource_version

    fetched = msgspec.structs.replace(fetched, data={"a": "2"})
    replaced = await client.replace(CONFIG_MAPS, fetched, type=ConfigMap)
    assert replaced.data == {"a": "2"}
    assert meta(replaced).resource_version != meta(fetched).resource_version

    # The stale resourceVersion still in `fetched` makes the second replace lose the race.
    fetched = msgspec.structs.replace(fetched, data={"a": "3"})
    with pytest.raises(Conflict) as conflict:
        await client.replace(CONFIG_MAPS, fetched, type=ConfigMap)
    assert conflict.value.code == 409

    await client.delete(CONFIG_MAPS, "crud", namespace)
    with pytest.raises(NotFound):
        await client.get(CONFIG_MAPS, "crud", namespace, type=ConfigMap)


async def test_lease_replace_is_compare_and_swap(client: KubeClient, namespace: str) -> None:
    now = MicroTime.from_datetime(datetime.datetime.now(datetime.UTC))
    lease = Lease(
        metadata=ObjectMeta(name="leader"),
        spec=LeaseSpec(holder_identity="a", lease_duration_seconds=15, renew_time=now),
    )
    created = await client.create(LEASES, lease, namespace, type=Lease)
    assert created.spec is not None
    assert created.spec.renew_time == now

    created = msgspec.structs.replace(
        created, spec=msgspec.structs.replace(created.spec, holder_identity="b")
    )
    renewed = await client.replace(LEASES, created, type=Lease)
    assert renewed.spec is not None
    assert renewed.spec.holder_identity == "b"
    # `created` still carries the old resourceVersion: a writer with a stale view loses.
    with pytest.raises(Conflict):
        await client.replace(LEASES, created, type=Lease)


async def test_custom_resource_crud(client: KubeClient, namespace: str, crds: list[str]) -> None:
    created = await client.create(EFFECT_CLAIMS, claim("claim-a"), namespace, type=EffectClaim)
    assert created.api_version == "runs.bubustack.io/v1alpha1"
    assert created.spec.effect_key == "deliver"

    created = msgspec.structs.replace(
        created, spec=msgspec.structs.replace(created.spec, holder_identity="worker-1")
    )
    replaced = await client.replace(EFFECT_CLAIMS, created, type=EffectClaim)
    assert replaced.spec.holder_identity == "worker-1"

    page = await client.list(EFFECT_CLAIMS, namespace, type=EffectClaim)
    assert [meta(item).name for item in page.items] == ["claim-a"]

    await client.delete(EFFECT_CLAIMS, "claim-a", namespace)
    with pytest.raises(NotFound):
        await client.get(EFFECT_CLAIMS, "claim-a", namespace, type=EffectClaim)


# ---- server-side apply --------------------------------------------------------------------


async def test_apply_creates_updates_and_prunes_fields_it_no_longer_sends(
    client: KubeClient, namespace: str
) -> None:
    first = await client.apply(
        CONFIG_MAPS,
        configmap("ssa", {"keep": "1", "drop": "1"}, labels={"team": "a"}),
        namespace=namespace,
        field_manager=MANAGER,
        type=ConfigMap,
    )
    assert first.data == {"keep": "1", "drop": "1"}
    managers = {entry["manager"] for entry in meta(first).managed_field_entries()}
    assert managers == {MANAGER}

    second = await client.apply(
        CONFIG_MAPS,
        configmap("ssa", {"keep": "2"}, labels={"team": "a"}),
        namespace=namespace,
        field_manager=MANAGER,
        type=ConfigMap,
    )
    assert second.data == {"keep": "2"}  # "drop" was owned by us alone, so it is removed
    assert meta(second).uid == meta(first).uid


async def test_apply_to_status_subresource_is_tracked_apart_and_prunes(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    await client.create(EFFECT_CLAIMS, claim("claim-s"), namespace, type=EffectClaim)
    status_patch: dict[str, Any] = {
        "metadata": {"name": "claim-s"},
        "status": {"phase": "Reserved", "observedGeneration": 1},
        "spec": {"effectKey": "ignored-on-status"},
    }
    applied = await client.apply(
        EFFECT_CLAIMS,
        status_patch,
        namespace=namespace,
        field_manager=MANAGER,
        subresource="status",
        type=EffectClaim,
    )
    assert applied.status == EffectClaimStatus(observed_generation=1, phase="Reserved")
    assert applied.spec.effect_key == "deliver"  # spec changes are ignored on /status
    subresources = {entry.get("subresource") for entry in meta(applied).managed_field_entries()}
    assert "status" in subresources

    pruned = await client.apply(
        EFFECT_CLAIMS,
        {"metadata": {"name": "claim-s"}, "status": {"observedGeneration": 2}},
        namespace=namespace,
        field_manager=MANAGER,
        subresource="status",
        type=EffectClaim,
    )
    assert pruned.status == EffectClaimStatus(observed_generation=2)  # phase: no longer sent


async def test_apply_conflict_without_force_and_takeover_with_force(
    client: KubeClient, namespace: str
) -> None:
    await client.apply(
        CONFIG_MAPS,
        configmap("owned", {"x": "a"}),
        namespace=namespace,
        field_manager="manager-a",
        type=ConfigMap,
    )
    with pytest.raises(Conflict) as conflict:
        await client.apply(
            CONFIG_MAPS,
            configmap("owned", {"x": "b"}),
            namespace=namespace,
            field_manager="manager-b",
            force=False,
            type=ConfigMap,
        )
    assert any(cause.field == ".data.x" for cause in conflict.value.causes)

    won = await client.apply(
        CONFIG_MAPS,
        configmap("owned", {"x": "b"}),
        namespace=namespace,
        field_manager="manager-b",
        force=True,
        type=ConfigMap,
    )
    assert won.data == {"x": "b"}
    owners = {
        entry["manager"]
        for entry in meta(won).managed_field_entries()
        if "f:x" in entry.get("fieldsV1", {}).get("f:data", {})
    }
    assert owners == {"manager-b"}


async def test_merge_patch_merges_maps_and_null_deletes(client: KubeClient, namespace: str) -> None:
    await client.create(
        CONFIG_MAPS,
        configmap("mp", {"a": "1", "b": "1"}, labels={"l": "1"}),
        namespace,
        type=ConfigMap,
    )
    patched = await client.merge_patch(
        CONFIG_MAPS,
        "mp",
        {"metadata": {"labels": {"m": "2"}}, "data": {"b": None, "c": "3"}},
        namespace,
        type=ConfigMap,
    )
    assert patched.data == {"a": "1", "c": "3"}
    assert meta(patched).labels == {"l": "1", "m": "2"}


# ---- delete -------------------------------------------------------------------------------


async def test_delete_preconditions_and_propagation(client: KubeClient, namespace: str) -> None:
    created = await client.create(
        CONFIG_MAPS, configmap("del", {"a": "1"}), namespace, type=ConfigMap
    )
    with pytest.raises(Conflict):
        await client.delete(CONFIG_MAPS, "del", namespace, preconditions_uid="not-the-uid")
    with pytest.raises(Conflict):
        await client.delete(CONFIG_MAPS, "del", namespace, preconditions_resource_version="1")

    # No garbage collector runs here, so foreground deletion parks the object with its finalizer:
    # proof that the propagation policy reached the server.
    await client.delete(
        CONFIG_MAPS,
        "del",
        namespace,
        propagation_policy="Foreground",
        preconditions_uid=meta(created).uid,
    )
    parked = await client.get(CONFIG_MAPS, "del", namespace, type=ConfigMap)
    assert meta(parked).deletion_timestamp is not None
    assert meta(parked).finalizers == ["foregroundDeletion"]

    await client.create(CONFIG_MAPS, configmap("del2", {}), namespace, type=ConfigMap)
    await client.delete(CONFIG_MAPS, "del2", namespace)
    with pytest.raises(NotFound):
        await client.delete(CONFIG_MAPS, "del2", namespace)


# ---- errors -------------------------------------------------------------------------------


async def test_errors_map_to_typed_classes(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    with pytest.raises(NotFound) as missing:
        await client.get(CONFIG_MAPS, "nope", namespace, type=ConfigMap)
    assert missing.value.reason == "NotFound"

    await client.create(CONFIG_MAPS, configmap("dup", {}), namespace, type=ConfigMap)
    with pytest.raises(AlreadyExists):
        await client.create(CONFIG_MAPS, configmap("dup", {}), namespace, type=ConfigMap)

    with pytest.raises(Invalid) as bad_name:
        await client.create(CONFIG_MAPS, configmap("Bad_Name", {}), namespace, type=ConfigMap)
    assert [cause.field for cause in bad_name.value.causes] == ["metadata.name"]

    with pytest.raises(Invalid) as bad_spec:
        await client.create(EFFECT_CLAIMS, claim("bad", effect_key=""), namespace, type=EffectClaim)
    assert "spec.effectKey" in {cause.field for cause in bad_spec.value.causes}


async def test_forbidden_and_unauthorized(control_plane: ControlPlane, namespace: str) -> None:
    nobody = await load_kubeconfig(control_plane.user_kubeconfig("nobody"))
    async with KubeClient(nobody) as client:
        with pytest.raises(Forbidden) as forbidden:
            await client.get(CONFIG_MAPS, "anything", namespace, type=ConfigMap)
    assert forbidden.value.code == 403

    stranger = ClusterConfig(
        host=control_plane.server,
        ssl_context=ssl.create_default_context(cafile=str(control_plane.ca_file)),
        token_provider=StaticToken("Bearer not-a-real-token"),
    )
    async with KubeClient(stranger) as client:
        with pytest.raises(Unauthorized):
            await client.get(CONFIG_MAPS, "anything", namespace, type=ConfigMap)


# ---- list ---------------------------------------------------------------------------------


async def test_list_selectors_and_pagination(
    client: KubeClient, namespace: str, registry: CollectorRegistry, config: ClusterConfig
) -> None:
    for index in range(5):
        parity = "even" if index % 2 == 0 else "odd"
        await client.create(
            CONFIG_MAPS, configmap(f"cm-{index}", {}, {"parity": parity}), namespace, type=ConfigMap
        )

    evens = await client.list(CONFIG_MAPS, namespace, type=ConfigMap, label_selector="parity=even")
    assert sorted(meta(item).name or "" for item in evens.items) == ["cm-0", "cm-2", "cm-4"]
    chosen = await client.list(
        CONFIG_MAPS, namespace, type=ConfigMap, field_selector="metadata.name=cm-3"
    )
    assert [meta(item).name for item in chosen.items] == ["cm-3"]
    both = await client.list(
        CONFIG_MAPS,
        namespace,
        type=ConfigMap,
        label_selector="parity in (odd)",
        field_selector="metadata.name!=cm-1",
    )
    assert [meta(item).name for item in both.items] == ["cm-3"]

    first = await client.list(CONFIG_MAPS, namespace, type=ConfigMap, limit=2)
    assert len(first.items) == 2
    assert first.metadata.continue_
    second = await client.list(
        CONFIG_MAPS, namespace, type=ConfigMap, limit=2, continue_=first.metadata.continue_
    )
    assert len(second.items) == 2
    assert {meta(i).name for i in first.items}.isdisjoint(meta(i).name for i in second.items)

    labels = {"verb": "list", "host": config.host_label}
    before = sample_value(registry, "rest_client_request_duration_seconds_count", labels)
    items, resource_version = await client.list_all(
        CONFIG_MAPS, namespace, type=ConfigMap, page_size=2
    )
    after = sample_value(registry, "rest_client_request_duration_seconds_count", labels)
    assert sorted(meta(item).name or "" for item in items) == [f"cm-{i}" for i in range(5)]
    assert int(resource_version) > 0
    assert after - before == 3  # pages of 2 + 2 + 1


# ---- watch --------------------------------------------------------------------------------


async def test_watch_sees_added_modified_deleted_in_order(
    client: KubeClient, namespace: str
) -> None:
    _, resource_version = await client.list_all(CONFIG_MAPS, namespace, type=ConfigMap)
    async with client.watch(CONFIG_MAPS, namespace, resource_version=resource_version) as stream:
        await client.create(CONFIG_MAPS, configmap("w", {"v": "1"}), namespace, type=ConfigMap)
        await client.merge_patch(CONFIG_MAPS, "w", {"data": {"v": "2"}}, namespace, type=ConfigMap)
        await client.delete(CONFIG_MAPS, "w", namespace)
        seen = []
        for _ in range(3):
            event = await next_event(stream)
            obj = event_object(event, ConfigMap)
            seen.append((event.type, meta(obj).name, (obj.data or {}).get("v")))
    assert seen == [(ADDED, "w", "1"), (MODIFIED, "w", "2"), (DELETED, "w", "2")]


async def test_watch_with_initial_events_ends_them_with_a_bookmark(
    client: KubeClient, namespace: str
) -> None:
    await client.create(CONFIG_MAPS, configmap("initial", {}), namespace, type=ConfigMap)
    async with client.watch(CONFIG_MAPS, namespace, send_initial_events=True) as stream:
        added = await next_event(stream)
        bookmark = await next_event(stream, skip_bookmarks=False)
    assert added.type == ADDED
    assert meta(event_object(added, ConfigMap)).name == "initial"
    assert bookmark.type == BOOKMARK
    marker = event_object(bookmark, ConfigMap)
    assert (meta(marker).annotations or {}).get(INITIAL_EVENTS_END) == "true"
    assert meta(marker).resource_version


@pytest.mark.parametrize("allow", [True, False])
async def test_periodic_bookmarks_only_when_allowed(
    client: KubeClient, namespace: str, allow: bool
) -> None:
    watched = configmap("watched", {}, labels={"role": "watched"})
    created = await client.create(CONFIG_MAPS, watched, namespace, type=ConfigMap)
    events: list[WatchEvent[Any]] = []
    # The server ends the watch after timeoutSeconds and bookmarks shortly before that, but
    # only with a resourceVersion newer than the watcher's: the unwatched "noise" write
    # advances the watch cache without producing an event for this label selector.
    async with client.watch(
        CONFIG_MAPS,
        namespace,
        resource_version=meta(created).resource_version,
        label_selector="role=watched",
        allow_bookmarks=allow,
        timeout_seconds=3,
    ) as stream:
        noise = await client.create(CONFIG_MAPS, configmap("noise", {}), namespace, type=ConfigMap)
        with anyio.fail_after(30):
            events = [event async for event in stream]
    assert {event.type for event in events} == ({BOOKMARK} if allow else set())
    for event in events:
        bookmark_version = meta(event_object(event, ConfigMap)).resource_version
        assert int(bookmark_version or 0) >= int(meta(noise).resource_version or 0)


async def test_watch_from_a_too_old_resource_version_is_a_410_error_event(
    client: KubeClient, namespace: str, crds: list[str]
) -> None:
    async with client.watch(EFFECT_CLAIMS, namespace, resource_version="1") as stream:
        event = await next_event(stream)
    assert event.type == ERROR
    error = event_error(event)
    assert isinstance(error, Gone)
    assert error.code == 410
    assert error.reason == "Expired"


async def test_watch_streams_megabyte_objects(client: KubeClient, namespace: str) -> None:
    big = "x" * 1_000_000  # ConfigMaps cap at 1 MiB; aiohttp's readline would stop at 128 KiB
    _, resource_version = await client.list_all(CONFIG_MAPS, namespace, type=ConfigMap)
    async with client.watch(CONFIG_MAPS, namespace, resource_version=resource_version) as stream:
        await client.create(CONFIG_MAPS, configmap("big", {"blob": big}), namespace, type=ConfigMap)
        await client.create(CONFIG_MAPS, configmap("small", {"s": "1"}), namespace, type=ConfigMap)
        first = event_object(await next_event(stream), ConfigMap)
        second = event_object(await next_event(stream), ConfigMap)
    assert (first.data or {}).get("blob") == big
    assert meta(second).name == "small"


# ---- rate limit and metrics ---------------------------------------------------------------


async def test_rate_limiter_spaces_requests_and_skips_watches(
    config: ClusterConfig, namespace: str, registry: CollectorRegistry
) -> None:
    timeline: list[str] = []
    now = [0.0]

    async def fake_sleep(seconds: float) -> None:
        timeline.append(f"wait {seconds:.2f}")
        now[0] += seconds

    async def recording_token() -> str | None:
        timeline.append(f"request at {now[0]:.2f}")
        return None  # the admin kubeconfig authenticates with a client certificate

    bucket = TokenBucket(10.0, 2, clock=lambda: now[0], sleep=fake_sleep)
    recorded = dataclasses.replace(config, token_provider=recording_token)
    metrics = RestClientMetrics.create(registry)
    async with KubeClient(recorded, metrics=metrics, rate_limiter=bucket) as client:
        for _ in range(4):
            with pytest.raises(NotFound):
                await client.get(CONFIG_MAPS, "absent", namespace, type=ConfigMap)
        async with client.watch(CONFIG_MAPS, namespace, timeout_seconds=1):
            pass

    assert timeline == [
        "request at 0.00",
        "request at 0.00",
        "wait 0.10",
        "request at 0.10",
        "wait 0.10",
        "request at 0.20",
        "request at 0.20",  # the watch: no token taken, no wait
    ]
    labels = {"verb": "get", "host": config.host_label}
    assert sample_value(registry, "rest_client_rate_limiter_duration_seconds_count", labels) == 4
    assert sample_value(
        registry, "rest_client_rate_limiter_duration_seconds_sum", labels
    ) == pytest.approx(0.2)
    watch_labels = {"verb": "watch", "host": config.host_label}
    assert (
        sample_value(registry, "rest_client_rate_limiter_duration_seconds_count", watch_labels) == 0
    )


async def test_request_metrics_count_codes_and_verbs(
    client: KubeClient, namespace: str, registry: CollectorRegistry, config: ClusterConfig
) -> None:
    host = config.host_label
    await client.create(CONFIG_MAPS, configmap("m", {}), namespace, type=ConfigMap)
    await client.get(CONFIG_MAPS, "m", namespace, type=ConfigMap)
    with pytest.raises(NotFound):
        await client.get(CONFIG_MAPS, "absent", namespace, type=ConfigMap)
    await client.apply(
        CONFIG_MAPS,
        configmap("m", {"a": "1"}),
        namespace=namespace,
        field_manager=MANAGER,
        type=ConfigMap,
    )

    def requests(code: str, method: str) -> float:
        return sample_value(
            registry, "rest_client_requests_total", {"code": code, "method": method, "host": host}
        )

    def durations(verb: str) -> float:
        return sample_value(
            registry, "rest_client_request_duration_seconds_count", {"verb": verb, "host": host}
        )

    assert requests("201", "POST") == 1
    assert requests("200", "GET") == 1
    assert requests("404", "GET") == 1
    assert requests("200", "PATCH") == 1
    assert (durations("create"), durations("get"), durations("patch")) == (1, 2, 1)


# ---- credentials ---------------------------------------------------------------------------


async def whoami(client: KubeClient) -> str:
    review = await client.create(SELF_SUBJECT_REVIEWS, {}, type=UserInfo)
    assert review.status is not None
    username: str = review.status["userInfo"]["username"]
    return username


@pytest.fixture
def fast_token_refresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the in-cluster loader re-read its token file on every request."""
    monkeypatch.setattr(incluster_config, "TOKEN_REFRESH_PERIOD", datetime.timedelta(0))
    yield


async def test_in_cluster_config_follows_a_rotated_token(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, fast_token_refresh: None
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(control_plane.service_account_token(namespace, "first"))
    (tmp_path / "namespace").write_text(namespace)
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    config = load_incluster(
        token_file=token_file,
        ca_file=control_plane.ca_file,
        namespace_file=tmp_path / "namespace",
        environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
    )
    assert config.namespace == namespace
    async with KubeClient(config) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:first"
        token_file.write_text(control_plane.service_account_token(namespace, "second"))
        assert await whoami(client) == f"system:serviceaccount:{namespace}:second"


EXEC_PLUGIN = """
import json, pathlib, sys
calls = pathlib.Path(sys.argv[1])
calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": pathlib.Path(sys.argv[2]).read_text(), "expirationTimestamp": sys.argv[3]},
}))
"""


def exec_kubeconfig(control_plane: ControlPlane, tmp_path: Path, expires: str) -> Path:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(EXEC_PLUGIN)
    document = render_kubeconfig(
        server=control_plane.server,
        ca_pem=control_plane.ca_file.read_bytes(),
        user="exec",
        token="placeholder",
    )
    document["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin), str(tmp_path / "calls"), str(tmp_path / "token"), expires],
            "interactiveMode": "Never",
        }
    }
    return write_kubeconfig(tmp_path / "exec.kubeconfig", document)


@pytest.mark.parametrize(
    ("expires_in", "plugin_runs"),
    [(datetime.timedelta(minutes=1), 3), (datetime.timedelta(hours=1), 1)],
    ids=["expiring-credential-is-renewed", "fresh-credential-is-reused"],
)
async def test_exec_plugin_credentials(
    control_plane: ControlPlane,
    namespace: str,
    tmp_path: Path,
    expires_in: datetime.timedelta,
    plugin_runs: int,
) -> None:
    (tmp_path / "token").write_text(control_plane.service_account_token(namespace, "robot"))
    expires = (datetime.datetime.now(datetime.UTC) + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = await load_kubeconfig(exec_kubeconfig(control_plane, tmp_path, expires))
    assert (tmp_path / "calls").read_text() == "x"
    async with KubeClient(config) as client:
        assert await whoami(client) == f"system:serviceaccount:{namespace}:robot"
        await whoami(client)
    # Within the 5-minute renewal margin, every request re-runs the plugin (load + 2 requests).
    assert len((tmp_path / "calls").read_text()) == plugin_runs


async def test_watches_share_the_bounded_connection_pool(
    config: ClusterConfig, namespace: str
) -> None:
    options = ClientOptions(connection_limit=1, request_timeout=0.5)
    async with KubeClient(config, options) as client:
        async with client.watch(CONFIG_MAPS, namespace):
            # The watch holds the only connection: the GET waits for the pool until its
            # deadline (with a free connection it would get a 404 at once).
            with pytest.raises(TransportTimeout):
                await client.get(CONFIG_MAPS, "absent", namespace, type=ConfigMap)
        with pytest.raises(NotFound):
            await client.get(CONFIG_MAPS, "absent", namespace, type=ConfigMap)


async def test_closing_the_client_waits_for_the_sockets_of_abandoned_watches(
    config: ClusterConfig, namespace: str
) -> None:
    sockets = []
    async with KubeClient(config) as kube:
        for _ in range(3):
            stream = kube.watch(CONFIG_MAPS, namespace, timeout_seconds=60)
            async with stream:
                response = stream._response  # left before the stream's end
                assert response is not None and response.connection is not None
                transport = response.connection.transport
                assert transport is not None
                sockets.append(transport.get_extra_info("socket"))
    # The client returned from close only once those connections were really gone: no socket
    # is left for the loop's next iterations (or, at a loop's end, for the garbage collector).
    assert [s.fileno() for s in sockets] == [-1, -1, -1]
