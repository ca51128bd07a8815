"""The informer against the real apiserver: every change seen, in order, across disconnects,
half-open connections and compaction (410 Gone)."""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
import pytest
from prometheus_client import CollectorRegistry

from runs_controller.api.codec import APISERVER_MAX_DEPTH, deep_recursion
from runs_controller.api.k8s import ConfigMap
from runs_controller.api.meta import ObjectMeta
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.kube.client import ClientOptions, KubeClient
from runs_controller.kube.config import load_kubeconfig
from runs_controller.kube.resources import CONFIG_MAPS, STORY_RUNS
from runs_controller.observability.metrics import InformerMetrics
from runs_controller.runtime.backoff import Backoff
from runs_controller.runtime.informer import (
    FIELD_MANAGER,
    Event,
    Informer,
    InformerOptions,
    SharedInformers,
)
from runs_controller.runtime.store import index_by_label
from runs_controller.testing import ControlPlane, ControlPlaneConfig, HarnessClient
from runs_controller.testing.proxy import TcpProxy
from runs_controller.testing.pytest_plugin import start_control_plane_or_fail
from runs_controller.testing.wait import poll_until_async, wait_until
from tests.integration.storyrun_support import nested_value


def _configmap(name: str, value: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"v": value}}


@asynccontextmanager
async def _client(kubeconfig: Path, **options: Any) -> AsyncIterator[KubeClient]:
    async with KubeClient(await load_kubeconfig(kubeconfig), ClientOptions(**options)) as client:
        yield client


@asynccontextmanager
async def _running(informer: Informer[Any]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(informer.run)
        with anyio.fail_after(60):
            await informer.wait_for_sync()
        yield
        group.cancel_scope.cancel()


def _fresh_list(admin: HarnessClient, namespace: str) -> dict[str, tuple[str, dict[str, str]]]:
    items = admin.get(f"/api/v1/namespaces/{namespace}/configmaps")["items"]
    return {
        f"{namespace}/{item['metadata']['name']}": (
            item["metadata"]["resourceVersion"],
            item.get("data") or {},
        )
        for item in items
        if item["metadata"]["name"] != "kube-root-ca.crt"
    }


def _cached(informer: Informer[ConfigMap]) -> dict[str, tuple[str, dict[str, str]]]:
    out = {}
    for key in informer.store:
        obj = informer.store.get(key)
        assert obj is not None and obj.metadata is not None
        out[key] = (obj.metadata.resource_version or "", obj.data or {})
    return out


async def _await_cache_equals_list(
    informer: Informer[ConfigMap], admin: HarnessClient, namespace: str
) -> None:
    async def equal() -> bool | None:
        return True if _cached(informer) == _fresh_list(admin, namespace) else None

    await poll_until_async(equal, within=60, what="informer cache to equal a fresh LIST")


async def test_two_hundred_objects_are_observed_in_order(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    async with _client(kubeconfig) as client:
        informer = Informer(client, CONFIG_MAPS, ConfigMap, options=InformerOptions(namespace))

        def record(event: Event[ConfigMap]) -> None:
            meta = event.obj.metadata
            assert meta is not None and meta.name is not None
            if meta.name.startswith("cm-"):
                seen[meta.name].append(event.type)

        informer.add_handler(record)
        async with _running(informer):
            path = f"/api/v1/namespaces/{namespace}/configmaps"
            names = [f"cm-{i:03d}" for i in range(200)]
            for name in names:
                await anyio.to_thread.run_sync(admin_client.create, path, _configmap(name, "1"))
            for name in names:
                current = await anyio.to_thread.run_sync(admin_client.get, f"{path}/{name}")
                current["data"] = {"v": "2"}
                await anyio.to_thread.run_sync(admin_client.replace, f"{path}/{name}", current)
            for name in names:
                await anyio.to_thread.run_sync(admin_client.delete, f"{path}/{name}")

            async def all_deleted() -> bool | None:
                return True if all(seen[n][-1:] == ["deleted"] for n in names) else None

            await poll_until_async(all_deleted, within=60, what="200 deletes to be observed")
    assert dict(seen.items()) == {name: ["added", "updated", "deleted"] for name in names}
    assert informer.lists == 1


async def test_indexes_and_late_handlers(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    admin_client.create(path, _configmap("a", "1", {"team": "x"}))
    admin_client.create(path, _configmap("b", "1", {"team": "y"}))
    async with _client(kubeconfig) as client:
        informer = Informer(
            client,
            CONFIG_MAPS,
            ConfigMap,
            indexers={"team": index_by_label("team")},
            options=InformerOptions(namespace),
        )
        async with _running(informer):
            assert sorted(informer.store.keys()) == [f"{namespace}/a", f"{namespace}/b"]
            team_x = informer.store.by_index("team", "x")
            assert [o.metadata.name for o in team_x if o.metadata] == ["a"]
            late: list[Event[ConfigMap]] = []
            informer.add_handler(late.append)
            assert sorted(e.obj.metadata.name or "" for e in late if e.obj.metadata) == ["a", "b"]
            assert all(e.initial and e.type == "added" for e in late)
            # managedFields are not kept in the cache.
            cached = informer.store.get(f"{namespace}/a")
            assert cached is not None and cached.metadata is not None
            assert cached.metadata.managed_field_entries() == []


# Cutting connections mid-request sometimes leaves one client transport to the garbage collector
# (about 1 run in 5 on a loaded machine; the proxy closes every stream of its own). Its
# ResourceWarning is not what this test is about, and it must not surface in a later test:
# the test collects garbage before it ends, under this filter.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_cache_converges_after_connections_are_cut(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    async with TcpProxy(control_plane.apiserver_port) as proxy:
        via_proxy = control_plane.admin_kubeconfig_via(proxy.port)
        async with _client(via_proxy) as client:
            informer = Informer(
                client,
                CONFIG_MAPS,
                ConfigMap,
                options=InformerOptions(namespace, backoff=Backoff(initial=0.05, cap=0.2)),
            )
            async with _running(informer):
                path = f"/api/v1/namespaces/{namespace}/configmaps"

                def write_round(round_: int) -> None:
                    for i in range(10):
                        name = f"r{round_}-{i}"
                        admin_client.create(path, _configmap(name, str(round_)))
                        if i % 3 == 0:
                            admin_client.delete(f"{path}/{name}")

                for round_ in range(5):
                    accepted = proxy.connections_accepted
                    proxy.cut()
                    # Writes land while the informer is disconnected or reconnecting.
                    await anyio.to_thread.run_sync(write_round, round_)

                    async def reconnected(accepted: int = accepted) -> bool | None:
                        return True if proxy.connections_accepted > accepted else None

                    await poll_until_async(reconnected, within=30, what="the watch to resume")
                await _await_cache_equals_list(informer, admin_client, namespace)
                assert proxy.connections_accepted >= 6  # it really reconnected after each cut
                assert informer.lists == 1  # resumed from its resourceVersion, no relist
    gc.collect()


async def test_half_open_watch_is_detected_by_the_idle_timeout(
    control_plane: ControlPlane, admin_client: HarnessClient, namespace: str
) -> None:
    async with TcpProxy(control_plane.apiserver_port) as proxy:
        via_proxy = control_plane.admin_kubeconfig_via(proxy.port)
        async with _client(via_proxy) as client:
            options = InformerOptions(
                namespace, idle_timeout=1.0, backoff=Backoff(initial=0.05, cap=0.2)
            )
            informer = Informer(client, CONFIG_MAPS, ConfigMap, options=options)
            async with _running(informer):
                before = proxy.connections_accepted
                proxy.stall()

                async def reconnected() -> bool | None:
                    return True if proxy.connections_accepted > before else None

                await poll_until_async(reconnected, within=30, what="a reconnect after idling")
                proxy.unstall()
                admin_client.create(
                    f"/api/v1/namespaces/{namespace}/configmaps", _configmap("late", "1")
                )
                await _await_cache_equals_list(informer, admin_client, namespace)


@pytest.fixture
def uncached_plane() -> Iterator[ControlPlane]:
    """A private control plane whose watches go straight to etcd (no watch cache), so that
    compacting etcd really expires a watch's resourceVersion."""
    plane = start_control_plane_or_fail(
        ControlPlaneConfig(extra_apiserver_args=["--watch-cache=false"])
    )
    try:
        yield plane
    finally:
        plane.stop()


async def test_compaction_forces_a_relist_that_includes_deletes(
    uncached_plane: ControlPlane,
) -> None:
    plane = uncached_plane
    admin = plane.admin
    namespace = plane.create_namespace("gone")
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    for name in ("keep", "change", "remove"):
        admin.create(path, _configmap(name, "1"))
    deleted: list[str] = []
    proxy = TcpProxy(plane.apiserver_port)
    async with proxy, _client(plane.admin_kubeconfig_via(proxy.port)) as client:
        informer = Informer(
            client,
            CONFIG_MAPS,
            ConfigMap,
            options=InformerOptions(namespace, backoff=Backoff(initial=0.05, cap=0.2)),
        )
        informer.add_handler(
            lambda e: (
                deleted.append(e.obj.metadata.name or "")
                if e.type == "deleted" and e.obj.metadata
                else None
            )
        )
        async with _running(informer):
            proxy.block()
            current = admin.get(f"{path}/change")
            current["data"] = {"v": "2"}
            admin.replace(f"{path}/change", current)
            admin.delete(f"{path}/remove")
            admin.create(path, _configmap("new", "1"))
            plane.compact_etcd()
            proxy.unblock()
            await _await_cache_equals_list(informer, admin, namespace)
            assert informer.lists >= 2  # the 410 made it relist
            assert "remove" in deleted


class ShortValues(msgspec.Struct, frozen=True):
    """A ConfigMap as a stricter (say, newer) reader sees it: values of at most 3 characters.

    The apiserver stores any string, so a longer value plays an object our Struct cannot read.
    """

    metadata: ObjectMeta | None = None
    data: dict[str, Annotated[str, msgspec.Meta(max_length=3)]] | None = None


async def test_objects_that_do_not_decode_are_left_out_and_the_rest_flows(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    admin_client.create(path, _configmap("good", "1"))
    admin_client.create(path, _configmap("bad", "too long"))
    registry = CollectorRegistry()
    events: list[tuple[str, str]] = []
    async with _client(kubeconfig) as client:
        informer = Informer(
            client,
            CONFIG_MAPS,
            ShortValues,
            options=InformerOptions(namespace),
            metrics=InformerMetrics.create(registry),
        )

        def record(event: Event[ShortValues]) -> None:
            assert event.obj.metadata is not None
            events.append((event.type, event.obj.metadata.name or ""))

        informer.add_handler(record)
        async with _running(informer):
            # The LIST path: one bad object does not keep the cache from syncing.
            assert informer.store.keys() == [f"{namespace}/good"]
            assert list(informer.undecodable) == [f"{namespace}/bad"]
            assert (
                "max_length" in informer.undecodable[f"{namespace}/bad"]
                or "length" in (informer.undecodable[f"{namespace}/bad"])
            )

            # The WATCH path: an object that turns bad leaves the cache with a delete event.
            current = admin_client.get(f"{path}/good")
            current["data"] = {"v": "now too long"}
            admin_client.replace(f"{path}/good", current)
            await wait_until(
                lambda: ("deleted", "good") in events,
                within=30,
                what="the undecodable update to remove the cached object",
            )
            # Meanwhile other objects keep flowing, and a fixed object comes back.
            admin_client.create(path, _configmap("later", "2"))
            fixed = admin_client.get(f"{path}/bad")
            fixed["data"] = {"v": "ok"}
            admin_client.replace(f"{path}/bad", fixed)
            await wait_until(
                lambda: sorted(informer.store.keys()) == [f"{namespace}/bad", f"{namespace}/later"],
                within=30,
                what="the new and the repaired object in the cache",
            )
            assert list(informer.undecodable) == [f"{namespace}/good"]
            admin_client.delete(f"{path}/good")
            await wait_until(
                lambda: not informer.undecodable,
                within=30,
                what="the deleted bad object to be forgotten",
            )
    name = informer.name
    assert (
        registry.get_sample_value(
            "runs_controller_informer_decode_errors_total", {"informer": name}
        )
        == 3
    )  # bad (list), good turned bad, good's delete event
    assert (
        registry.get_sample_value(
            "runs_controller_informer_undecodable_objects", {"informer": name}
        )
        == 0
    )
    assert ("added", "good") in events and ("added", "later") in events
    assert ("added", "bad") in events  # the repaired object, as a new one
    assert informer.lists == 1


async def test_shared_informers_key_on_type_and_start_late_registrations(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    admin_client.create(f"/api/v1/namespaces/{namespace}/configmaps", _configmap("x", "1"))
    async with _client(kubeconfig) as client:
        shared = SharedInformers(client)
        typed = shared.get(CONFIG_MAPS, ConfigMap, namespace=namespace)
        assert shared.get(CONFIG_MAPS, ConfigMap, namespace=namespace) is typed
        strict = shared.get(CONFIG_MAPS, ShortValues, namespace=namespace)
        assert len(shared.all()) == 2  # another Struct type is another informer and cache
        async with anyio.create_task_group() as group:
            group.start_soon(shared.run)
            with anyio.fail_after(60):
                await typed.wait_for_sync()
                await strict.wait_for_sync()
            late = shared.get(CONFIG_MAPS, ConfigMap, namespace="default")
            with anyio.fail_after(60):
                await late.wait_for_sync()  # started although run() was already running
            group.cancel_scope.cancel()
    assert isinstance(typed.store.get(f"{namespace}/x"), ConfigMap)
    assert isinstance(strict.store.get(f"{namespace}/x"), ShortValues)


async def test_the_cache_keeps_only_our_managed_fields(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    admin_client.create(path, _configmap("m", "1"))
    async with _client(kubeconfig) as client:
        await client.apply(
            CONFIG_MAPS,
            {"metadata": {"name": "m", "namespace": namespace}, "data": {"ours": "1"}},
            type=ConfigMap,
            field_manager=FIELD_MANAGER,
        )
        informer = Informer(client, CONFIG_MAPS, ConfigMap, options=InformerOptions(namespace))
        async with _running(informer):
            cached = informer.store.get(f"{namespace}/m")
    assert cached is not None and cached.metadata is not None
    entries = cached.metadata.managed_field_entries()
    assert [e["manager"] for e in entries] == [FIELD_MANAGER]
    assert entries[0]["fieldsV1"] == {"f:data": {"f:ours": {}}}


def _deep_storyrun(name: str, depth: int) -> dict[str, Any]:
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": {"name": name},
        "spec": {"storyRef": {"name": "s"}, "inputs": {"x": nested_value(depth)}},
    }


def _create_deep(admin: HarnessClient, path: str, body: dict[str, Any]) -> None:
    with deep_recursion():  # the harness client's json.dumps/json.loads recurse too
        admin.create(path, body)


@pytest.mark.usefixtures("crds")
async def test_objects_as_deep_as_the_apiserver_stores_decode_on_list_and_watch(
    kubeconfig: Path, admin_client: HarnessClient, namespace: str
) -> None:
    """The apiserver stores JSON up to 10,000 levels deep. Past Python's default recursion
    limit msgspec could not even skip such a value, so one object made the whole LIST page
    (or its watch line) undecodable and the informer never synced."""
    path = f"/apis/runs.bubustack.io/v1alpha1/namespaces/{namespace}/storyruns"
    depth = APISERVER_MAX_DEPTH - 10  # the object's own fields add a few levels
    _create_deep(admin_client, path, _deep_storyrun("deep-listed", depth))
    admin_client.create(path, _deep_storyrun("shallow", 2))
    async with _client(kubeconfig) as client:
        informer = Informer(client, STORY_RUNS, StoryRun, options=InformerOptions(namespace))
        async with _running(informer):
            assert sorted(informer.store.keys()) == [
                f"{namespace}/deep-listed",
                f"{namespace}/shallow",
            ]
            _create_deep(admin_client, path, _deep_storyrun("deep-watched", depth))
            await wait_until(
                lambda: informer.store.get(f"{namespace}/deep-watched") is not None,
                within=30,
                what="the deep object's ADDED event in the cache",
            )
            assert not informer.undecodable
        fetched = await client.get(STORY_RUNS, "deep-listed", namespace, type=StoryRun)
    for run in (informer.store.get(f"{namespace}/deep-watched"), fetched):
        assert run is not None and run.spec.inputs is not None
        level: Any = run.spec.inputs["x"]
        for _ in range(depth):
            level = level["n"]
        assert level == "leaf"
