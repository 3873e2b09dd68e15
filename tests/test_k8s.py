"""k8s/, checked offline (no cluster here).

`render()` builds an overlay the way `kubectl kustomize` does, for the features k8s/ uses
and no others: `resources` (files and folders with a kustomization.yaml), `patches` given as
RFC 6902 JSON patches with a kind/name `target`, `namespace` and `images`. Where kubectl is
installed a test compares its output with `kubectl kustomize`. The rendered objects are
validated against the Kubernetes schemas (kubernetes-validate, strict) and cross-checked
against the code: settings, CLI commands, routes, ports, shutdown timings and the Triton
model contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from pydantic import ValidationError
from tritonclient.grpc import model_config_pb2

from inference import triton
from inference.base import GenerationRequest
from inference.triton import TritonConfig, TritonEngine
from resolvers.core.settings import Settings
from schema import app as app_module
from schema.cli import UVICORN_OPTIONS
from tests.test_deploy import (
    app_routes,
    image_user,
    required_settings,
    run_cli,
    settings_from_env,
    worker_shutdown,
)

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.37"
APP_IMAGE = "creation-king"  # the name overlays retag with `images`
COMPONENT = "app.kubernetes.io/component"
PHASE = "creation-king/phase"
WRITER_CONFIG = K8S / "triton" / "model_repository" / "writer" / "config.pbtxt"

Doc = dict[str, Any]

# --- the renderer -------------------------------------------------------------------------

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
_CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def render(directory: Path) -> list[Doc]:
    """The objects `kubectl kustomize DIRECTORY` prints (see the module docstring)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - _KUSTOMIZATION_KEYS
    assert not unsupported, f"{directory}: the test renderer does not implement {unsupported}"
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else load(path)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        assert set(target) == {"kind", "name"}, "targets select by kind and name only"
        (doc,) = [
            d
            for d in docs
            if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]
        ]
        for operation in yaml.safe_load((directory / patch["path"]).read_text()):
            _json_patch(doc, operation)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    for image in kustomization.get("images", []):
        for doc in docs:
            for container in containers(doc):
                name, tag = _split_image(container["image"])
                if name == image["name"]:
                    name, tag = image.get("newName", name), image.get("newTag", tag)
                    container["image"] = f"{name}:{tag}" if tag else name
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys)), f"{directory}: an object is defined twice"
    return docs


def load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _json_patch(doc: Doc, operation: Mapping[str, Any]) -> None:
    """One RFC 6902 operation (add, replace, remove) applied to `doc` in place."""
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"][1:].split("/")
    ]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    assert op in ("add", "replace", "remove"), f"unsupported JSON patch operation {op}"
    key: int | str = last
    if isinstance(node, list):
        key = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(key, operation["value"])
            return
        assert key < len(node), f"{operation['path']} does not exist"
    elif op == "add":
        node[key] = operation["value"]
        return
    else:
        assert key in node, f"{operation['path']} does not exist"
    if op == "replace":
        node[key] = operation["value"]
    else:
        del node[key]


def _split_image(reference: str) -> tuple[str, str | None]:
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the colon was a registry's port
        return reference, None
    return name, tag


def pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] in _WORKLOADS:
        spec: Doc = doc["spec"]["template"]["spec"]
        return spec
    return None


def containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    return [] if spec is None else [*spec.get("initContainers", []), *spec["containers"]]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def rendered(overlay: str) -> list[Doc]:
    return render(K8S / "overlays" / overlay)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def component(docs: list[Doc], name: str) -> Doc:
    (doc,) = [
        d
        for d in docs
        if d["kind"] in _WORKLOADS and d["metadata"]["labels"].get(COMPONENT) == name
    ]
    return doc


def secret_template(overlay: str) -> Doc:
    (doc,) = load(K8S / "overlays" / overlay / "secret.template.yaml")
    return doc


def overlay_env(overlay: str) -> dict[str, str]:
    """What the app's pods get through envFrom: the ConfigMap and the Secret (its template)."""
    config = find(rendered(overlay), "ConfigMap", "creation-king-config")["data"]
    return {**config, **secret_template(overlay)["stringData"]}


# --- the renderer is kustomize, and the output is valid Kubernetes --------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    def key(doc: Doc) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    expected = sorted((doc for doc in yaml.safe_load_all(result.stdout) if doc), key=key)
    assert sorted(rendered(overlay), key=key) == expected


def test_renderer_applies_json_patches() -> None:
    doc: Doc = {"metadata": {"annotations": {}}, "spec": {"items": [1, 3]}}
    for operation in (
        {"op": "add", "path": "/spec/items/1", "value": 2},
        {"op": "add", "path": "/spec/items/-", "value": 4},
        {"op": "replace", "path": "/spec/items/0", "value": 0},
        {"op": "add", "path": "/metadata/annotations/a.io~1b", "value": "x"},
        {"op": "remove", "path": "/spec/items/3"},
    ):
        _json_patch(doc, operation)
    assert doc == {"metadata": {"annotations": {"a.io/b": "x"}}, "spec": {"items": [0, 2, 3]}}
    with pytest.raises(AssertionError, match="does not exist"):
        _json_patch(doc, {"op": "replace", "path": "/spec/missing", "value": 1})


def _schema_error(doc: Doc) -> str | None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(map(str, exc.path))
        return f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}"
    return None


def test_overlay_objects_follow_the_kubernetes_schema(overlay: str) -> None:
    docs = rendered(overlay)
    assert [error for doc in docs if (error := _schema_error(doc))] == []
    # Strict validation does bite: a misspelt probe field is an error.
    api = copy.deepcopy(component(docs, "api"))
    probe = containers(api)[0]["readinessProbe"]["httpGet"]
    probe["paht"] = probe.pop("path")
    assert _schema_error(api)


def test_secret_templates_are_valid_but_never_applied_by_kustomize(overlay: str) -> None:
    template = secret_template(overlay)
    assert _schema_error(template) is None
    assert not any(doc["kind"] == "Secret" for doc in rendered(overlay))
    namespace = find(rendered(overlay), "Namespace", template["metadata"]["namespace"])
    assert namespace["metadata"]["name"] == template["metadata"]["namespace"]


def test_app_images_are_pinned_and_shared(overlay: str) -> None:
    docs = rendered(overlay)
    images = {
        containers(component(docs, name))[0]["image"] for name in ("api", "worker", "migrate")
    }
    assert len(images) == 1  # one image, three commands
    name, tag = _split_image(images.pop())
    assert name.rsplit("/", 1)[-1] == APP_IMAGE
    assert tag not in (None, "latest")
    for doc in docs:
        for container in containers(doc):
            assert _split_image(container["image"])[1] not in (None, "latest"), container["image"]


# --- settings -------------------------------------------------------------------------------


def test_manifests_set_only_settings_the_code_reads(overlay: str) -> None:
    known = {f"CK_{name.upper()}" for name in Settings.model_fields}
    keys = set(overlay_env(overlay))
    for doc in rendered(overlay):
        for container in containers(doc):
            for variable in container.get("env", []):
                keys.add(variable["name"])
                reference = variable.get("valueFrom", {})
                for source in ("configMapKeyRef", "secretKeyRef"):
                    if source in reference:
                        keys.add(reference[source]["key"])
    unknown = {key for key in keys if key.startswith("CK_")} - known
    assert not unknown, f"not settings: {unknown}"


def test_overlay_provides_every_setting_production_requires(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    required = required_settings(monkeypatch)
    assert required >= {"jwt_secret", "database_url", "redis_url", "s3_bucket"}
    env = overlay_env(overlay)
    missing = {f"CK_{name.upper()}" for name in required} - set(env)
    assert not missing
    # The template as it is never runs...
    assert any("REPLACE_ME" in value for value in env.values())
    with pytest.raises(ValidationError, match="CK_JWT_SECRET"):
        settings_from_env(monkeypatch, env)
    # ...and once filled in, every value parses and production's checks pass.
    filled = {key: value.replace("REPLACE_ME", "filled" + "x" * 32) for key, value in env.items()}
    settings = settings_from_env(monkeypatch, filled)
    assert settings.env == "production"
    assert settings.engine_kind == ("triton" if overlay == "prod" else "dev")


def test_in_cluster_endpoints_name_services_and_their_ports(overlay: str) -> None:
    docs = rendered(overlay)
    env = overlay_env(overlay)
    checked = 0
    for key in ("CK_DATABASE_URL", "CK_REDIS_URL", "CK_S3_ENDPOINT_URL", "CK_TRITON_URL"):
        if key not in env:
            continue
        value = env[key] if "://" in env[key] else f"grpc://{env[key]}"
        url = urlsplit(value)
        if url.hostname is None or "." in url.hostname:
            continue  # outside the cluster (managed services)
        service = find(docs, "Service", url.hostname)
        ports = {port["port"] for port in service["spec"]["ports"]}
        assert url.port in ports, f"{key}: {url.hostname} has no port {url.port}"
        checked += 1
    assert checked == (3 if overlay == "dev" else 1)


def _pod_references(doc: Doc) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) of every object a workload's pods name."""
    spec = pod_spec(doc)
    if spec is None:
        return
    if "serviceAccountName" in spec:
        yield "ServiceAccount", spec["serviceAccountName"], None
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None
    sources = {"configMapRef": "ConfigMap", "secretRef": "Secret"}
    key_sources = {"configMapKeyRef": "ConfigMap", "secretKeyRef": "Secret"}
    for container in containers(doc):
        for source in container.get("envFrom", []):
            for field, kind in sources.items():
                if field in source:
                    yield kind, source[field]["name"], None
        for variable in container.get("env", []):
            for field, kind in key_sources.items():
                if field in variable.get("valueFrom", {}):
                    reference = variable["valueFrom"][field]
                    yield kind, reference["name"], reference["key"]


def test_pods_name_only_objects_that_exist(overlay: str) -> None:
    docs = rendered(overlay)
    secret = secret_template(overlay)  # created out of band, before the pods start
    keys = {(doc["kind"], doc["metadata"]["name"]): set(doc.get("data", {})) for doc in docs}
    keys[("Secret", secret["metadata"]["name"])] = set(secret["stringData"])
    references = [reference for doc in docs for reference in _pod_references(doc)]
    kinds = {"ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim"}
    assert {kind for kind, _name, _key in references} == (
        kinds if overlay == "prod" else kinds - {"PersistentVolumeClaim"}
    )
    for kind, name, key in references:
        assert (kind, name) in keys, f"{kind}/{name} does not exist"
        assert key is None or key in keys[(kind, name)], f"{kind}/{name} has no key {key}"


def test_selectors_and_targets_find_their_objects(overlay: str) -> None:
    docs = rendered(overlay)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in docs if w["kind"] in _WORKLOADS]
    for doc in docs:
        if doc["kind"] == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) in names
        if doc["kind"] in ("Service", "PodDisruptionBudget"):
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert any(selector.items() <= labels.items() for labels in pods), (
                f"{doc['kind']}/{doc['metadata']['name']} selects no pods"
            )


# --- the app's pods: commands, routes, ports, security, shutdown ----------------------------


def test_commands_exist_in_the_cli(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = rendered(overlay)
    for name, subcommand in (("api", "serve"), ("worker", "worker"), ("migrate", "migrate")):
        (container,) = containers(component(docs, name))
        command, _args = run_cli(monkeypatch, container["command"])
        assert command == subcommand


def _port(container: Doc, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def test_api_probes_ingress_and_service_reach_the_app(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = rendered(overlay)
    routes = app_routes()
    (container,) = containers(component(docs, "api"))
    _command, args = run_cli(monkeypatch, container["command"])
    probes = {
        name: container[name]["httpGet"]
        for name in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["path"] in routes
        assert _port(container, probe["port"]) == args.port
    service = find(docs, "Service", "creation-king-api")
    (service_port,) = service["spec"]["ports"]
    assert _port(container, service_port["targetPort"]) == args.port
    ingress = find(docs, "Ingress", "creation-king")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "creation-king-api"
            assert backend["port"]["name"] == service_port["name"]
            prefix = path["path"]
            assert any(route == prefix or route.startswith(prefix + "/") for route in routes)
            assert path["path"] not in ("/healthz", "/readyz")


def test_worker_serves_metrics_where_prometheus_scrapes(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = component(rendered(overlay), "worker")
    (container,) = containers(worker)
    # The worker's environment: envFrom, then its own `env`, which wins.
    env = overlay_env(overlay) | {v["name"]: v["value"] for v in container.get("env", [])}
    filled = {key: value.replace("REPLACE_ME", "filled" + "x" * 32) for key, value in env.items()}
    port = settings_from_env(monkeypatch, filled).worker_metrics_port
    assert port is not None, "the worker serves no metrics (CK_WORKER_METRICS_PORT)"
    assert _port(container, "metrics") == port
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_ingress_keeps_websockets_open() -> None:
    annotations = find(rendered("prod"), "Ingress", "creation-king")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


def test_app_pods_run_non_root_on_a_read_only_filesystem(overlay: str) -> None:
    docs = rendered(overlay)
    data_dir = overlay_env(overlay)["CK_DATA_DIR"]
    for name in ("api", "worker", "migrate"):
        doc = component(docs, name)
        spec = pod_spec(doc)
        assert spec is not None
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == image_user()
        assert spec["automountServiceAccountToken"] is False
        (container,) = containers(doc)
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        for path in ("/tmp", data_dir):
            assert "emptyDir" in volumes[mounts[path]], f"{name}: {path} is not writable"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_api_spreads_and_survives_disruptions(overlay: str) -> None:
    docs = rendered(overlay)
    spec = pod_spec(component(docs, "api"))
    assert spec is not None
    keys = {constraint["topologyKey"] for constraint in spec["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for name in ("creation-king-api", "creation-king-worker"):
        assert find(docs, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1


def test_hpas_scale_api_and_worker_on_cpu_and_memory(overlay: str) -> None:
    docs = rendered(overlay)
    for name in ("api", "worker"):
        deployment = component(docs, name)
        hpa = find(docs, "HorizontalPodAutoscaler", deployment["metadata"]["name"])
        assert hpa["apiVersion"] == "autoscaling/v2"
        metrics = {metric["resource"]["name"] for metric in hpa["spec"]["metrics"]}
        assert metrics == {"cpu", "memory"}
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        # The HPA owns the count: `replicas` here would reset it on every apply.
        assert "replicas" not in deployment["spec"]


async def test_worker_grace_period_outlasts_its_drain() -> None:
    drain, job_timeout = await worker_shutdown()
    grace = pod_spec(component(rendered("prod"), "worker"))
    assert grace is not None
    seconds = grace["terminationGracePeriodSeconds"]
    # The drain, then time to cancel and re-queue the rest and close the clients...
    assert seconds >= drain + 30
    # ...and no longer: the worker cancels after `drain` itself (k8s/base/worker.yaml).
    assert seconds < job_timeout
    assert overlay_env("prod")["CK_JOB_TIMEOUT_SECONDS"] == str(job_timeout)


def test_api_grace_period_and_probe_timeouts_fit_the_server() -> None:
    spec = pod_spec(component(rendered("prod"), "api"))
    assert spec is not None
    (container,) = spec["containers"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    shutdown = int(pre_stop[1]) + UVICORN_OPTIONS["timeout_graceful_shutdown"]
    assert spec["terminationGracePeriodSeconds"] > shutdown
    # /readyz waits up to twice READY_TIMEOUT for the engine (schema/app.py).
    assert container["readinessProbe"]["timeoutSeconds"] > 2 * app_module.READY_TIMEOUT


def test_migration_job_can_run_before_the_rest(overlay: str) -> None:
    """`kubectl apply -k OVERLAY -l creation-king/phase=pre-deploy` applies the Job and all
    it needs (k8s/README.md); the API and workers come after."""
    docs = rendered(overlay)
    phase = [doc for doc in docs if doc["metadata"].get("labels", {}).get(PHASE) == "pre-deploy"]
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in phase}
    job = component(docs, "migrate")
    assert ("Job", job["metadata"]["name"]) in kinds
    spec = pod_spec(job)
    assert spec is not None
    assert spec["restartPolicy"] == "Never"
    assert ("ServiceAccount", spec["serviceAccountName"]) in kinds
    assert ("ConfigMap", "creation-king-config") in kinds
    assert ("Namespace", job["metadata"]["namespace"]) in kinds
    assert not {kind for kind, _name in kinds} & {"Deployment", "StatefulSet", "Service"}


# --- data stores and Triton per overlay -----------------------------------------------------


def test_dev_runs_its_data_stores_and_no_triton() -> None:
    docs = rendered("dev")
    stateful = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "StatefulSet"}
    assert stateful == {"postgres", "redis", "minio"}
    images = {containers(find(docs, "StatefulSet", name))[0]["image"] for name in stateful}
    assert {"postgres:16", "redis:7.2"} <= images
    assert not [doc for doc in docs if doc["metadata"]["name"] == "triton"]


def test_prod_runs_triton_on_a_gpu_and_no_data_stores() -> None:
    docs = rendered("prod")
    assert not [doc for doc in docs if doc["kind"] == "StatefulSet"]
    deployment = find(docs, "Deployment", "triton")
    spec = pod_spec(deployment)
    assert spec is not None
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"]
    (container,) = spec["containers"]
    assert container["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert container["image"].endswith("-py3")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    flags = dict(
        a.removeprefix("--").split("=", 1) for a in container["args"] if a.startswith("--")
    )
    assert flags["model-control-mode"] == "explicit"
    assert _port(container, "grpc") == int(flags["grpc-port"])
    assert _port(container, "http") == int(flags["http-port"])
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert mounts[flags["model-repository"]]["readOnly"] is True
    for probe, path in (
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
    # The app reaches it over gRPC: CK_TRITON_URL -> Service -> the container's gRPC port.
    host, port = overlay_env("prod")["CK_TRITON_URL"].split(":")
    (grpc,) = [p for p in find(docs, "Service", host)["spec"]["ports"] if p["port"] == int(port)]
    assert _port(container, grpc["targetPort"]) == int(flags["grpc-port"])


# --- the Triton model configuration ---------------------------------------------------------


def writer_config() -> Any:
    return text_format.Parse(WRITER_CONFIG.read_text(), model_config_pb2.ModelConfig())


_DTYPES = {
    "BYTES": "TYPE_STRING",
    "INT32": "TYPE_INT32",
    "FP32": "TYPE_FP32",
    "INT64": "TYPE_INT64",
}


def test_writer_config_matches_the_client_contract() -> None:
    config = writer_config()  # a strict parse: an unknown field fails
    assert config.name == WRITER_CONFIG.parent.name == Settings.model_fields["write_model"].default
    data_type = model_config_pb2.DataType.Name
    inputs = {
        tensor.name: (data_type(tensor.data_type), list(tensor.dims)) for tensor in config.input
    }
    assert inputs == {
        triton.PROMPT_INPUT: (_DTYPES["BYTES"], [1]),
        triton.MAX_TOKENS_INPUT: (_DTYPES["INT32"], [1]),
        triton.TEMPERATURE_INPUT: (_DTYPES["FP32"], [1]),
        triton.SEED_INPUT: (_DTYPES["INT64"], [1]),
    }
    outputs = {
        tensor.name: (data_type(tensor.data_type), list(tensor.dims)) for tensor in config.output
    }
    assert outputs == {triton.TEXT_OUTPUT: (_DTYPES["BYTES"], [1])}
    # The client sends [1]-shaped tensors without a batch dimension.
    assert config.max_batch_size == 0
    assert config.model_transaction_policy.decoupled is True
    assert config.HasField("dynamic_batching")
    assert config.dynamic_batching.max_queue_delay_microseconds > 0


# A stand-in for the real model: the shipped config.pbtxt unchanged, with a Python-backend
# model that streams the prompt's words back, one response per word, and checks the types.
_STAND_IN = """
import numpy as np
import triton_python_backend_utils as pb_utils

TYPES = {
    "prompt": np.object_,
    "max_tokens": np.int32,
    "temperature": np.float32,
    "seed": np.int64,
}
FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class TritonPythonModel:
    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            tensors = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in TYPES
            }
            wrong = [name for name, kind in TYPES.items() if tensors[name].dtype != kind]
            if wrong:
                error = pb_utils.TritonError(f"wrong types: {wrong}")
                sender.send(pb_utils.InferenceResponse(error=error), flags=FINAL)
                continue
            words = tensors["prompt"][0].decode("utf-8").split()
            for word in words[: int(tensors["max_tokens"][0])]:
                token = np.array([(" " + word).encode("utf-8")], dtype=np.object_)
                text = pb_utils.Tensor("text", token)
                sender.send(pb_utils.InferenceResponse(output_tensors=[text]))
            sender.send(flags=FINAL)
        return None
"""
_TRITON_READY_TIMEOUT = 120.0
_TRITON_SITE = ROOT / ".venv-triton" / "lib" / "python3.11" / "site-packages"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    with contextlib.ExitStack() as stack:
        for sock in sockets:
            stack.enter_context(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _with(argument: str, values: Mapping[str, object]) -> str:
    """`--flag=value` with the value from `values` when it names the flag."""
    name = argument.removeprefix("--").split("=", 1)[0]
    return f"--{name}={values[name]}" if name in values else argument


def _python_backend(directory: Path, dist: Path) -> Path:
    """A backend folder for the bundled server: its Python backend plus the 3.11 stub."""
    python = directory / "python"
    python.mkdir(parents=True)
    for file in (dist / "backends" / "python").iterdir():
        (python / file.name).symlink_to(file)
    stub = dist / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
    (python / stub.name).symlink_to(stub)
    return directory


@pytest.fixture(scope="module")
def writer_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real Triton (the one nvidia-pytriton ships, in .venv-triton) started with the prod
    Deployment's flags on a repository of the shipped config and the stand-in model:
    (gRPC "host:port", HTTP base URL)."""
    dist = _TRITON_SITE / "pytriton" / "tritonserver"
    if not (dist / "bin" / "tritonserver").exists():
        if os.environ.get("CK_REQUIRE_SERVICES") == "1":
            pytest.fail("Triton is required (CK_REQUIRE_SERVICES=1) but .venv-triton is missing")
        pytest.skip("Triton unavailable: run tests/triton/setup.sh")
    workdir = tmp_path_factory.mktemp("triton")
    models = workdir / "models"
    shutil.copytree(WRITER_CONFIG.parent.parent, models)
    (models / "writer" / "1").mkdir()
    (models / "writer" / "1" / "model.py").write_text(_STAND_IN)
    http, grpc, metrics = _free_ports(3)
    values = {
        "model-repository": models,
        "http-port": http,
        "grpc-port": grpc,
        "metrics-port": metrics,
    }
    (container,) = containers(find(rendered("prod"), "Deployment", "triton"))
    assert container["args"][0] == "tritonserver"
    flags = [_with(argument, values) for argument in container["args"][1:]]
    backends = _python_backend(workdir / "backends", dist)
    hidden = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env["LD_LIBRARY_PATH"] = str(_TRITON_SITE / "nvidia_pytriton.libs")
    env["PATH"] = f"{ROOT / '.venv-triton' / 'bin'}:{env['PATH']}"
    log = workdir / "triton.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(dist / "bin" / "tritonserver"), *flags, f"--backend-directory={backends}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.monotonic() + _TRITON_READY_TIMEOUT
        while _http_status(f"{base}/v2/health/ready") != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Triton did not become ready; log tail:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{grpc}", base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.triton
def test_writer_config_loads_in_a_real_triton(writer_triton: tuple[str, str]) -> None:
    _grpc_url, http_url = writer_triton
    with urllib.request.urlopen(f"{http_url}/v2/models/writer/config", timeout=5) as response:
        loaded = json.load(response)
    expected = writer_config().dynamic_batching
    assert loaded["model_transaction_policy"] == {"decoupled": True}
    batching = loaded["dynamic_batching"]
    assert int(batching["max_queue_delay_microseconds"]) == expected.max_queue_delay_microseconds
    queue = batching["default_queue_policy"]
    assert int(queue["max_queue_size"]) == expected.default_queue_policy.max_queue_size


@pytest.mark.triton
async def test_writer_config_serves_the_client_in_a_real_triton(
    writer_triton: tuple[str, str],
) -> None:
    grpc_url, _http_url = writer_triton
    engine = TritonEngine(TritonConfig(grpc_url))
    try:
        assert await engine.ready("writer")

        async def generate(index: int) -> str:
            request = GenerationRequest(
                request_id=f"deploy-{index}",
                model="writer",
                prompt=f"alpha beta gamma delta {index}",
                max_tokens=4,
                temperature=0.0,
                seed=7,
            )
            return "".join([delta.text async for delta in engine.stream(request)])

        texts = await asyncio.gather(*(generate(index) for index in range(4)))
    finally:
        await engine.aclose()
    assert texts == [" alpha beta gamma delta"] * 4
