"""The Kubernetes deployment (deploy/kubernetes) is valid against the API it will be applied to,
configures only what the code reads, and keeps the verifier apart from the log."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer.main
import yaml
from audit_trail.cli import app as cli_app
from audit_trail.server import HttpLimits
from decision_log.health import router as decision_log_health
from decision_log.settings import Settings as DecisionLogSettings
from http_edge import metrics
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from verifier.endpoints import public as verifier_public
from verifier.settings import Settings as VerifierSettings

from tests.deploy.conftest import DEPLOY, PROJECT_ROOT, named, pod_spec, render, workloads

# The oldest Kubernetes the manifests are written for (preStop `sleep` needs 1.30 or later),
# among the versions kubernetes-validate ships schemas for.
KUBERNETES_VERSION = "1.33.0"
SCHEMAS = DEPLOY / "schemas"
CUSTOM_RESOURCE_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservice-serving-v1beta1.json",
}
IMAGE = "audit-trail:0.1.0"


# -- validity ---------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it: an object's unknown fields are refused
    unless it says x-kubernetes-preserve-unknown-fields (structural schemas, Kubernetes docs
    "Field pruning"); JSON Schema would let them through."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


def custom_resource_validator(document: dict[str, Any]) -> jsonschema.Draft7Validator:
    name = CUSTOM_RESOURCE_SCHEMAS[(document["apiVersion"], document["kind"])]
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft7Validator(strict(schema))


def is_custom(document: dict[str, Any]) -> bool:
    return (document["apiVersion"], document["kind"]) in CUSTOM_RESOURCE_SCHEMAS


def test_every_builtin_document_is_valid_for_the_pinned_kubernetes(
    manifests: list[dict[str, Any]],
) -> None:
    builtin = [d for d in manifests if not is_custom(d)]
    assert len(builtin) >= 15
    for document in builtin:
        # Raises ValidationError naming the field; strict refuses fields the API does not have.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_a_misspelt_field(manifests: list[dict[str, Any]]) -> None:
    document = copy.deepcopy(named(manifests, "Deployment", "verifier"))
    document["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_custom_resources_are_valid_against_the_upstream_crd_schemas(
    manifests: list[dict[str, Any]],
) -> None:
    example = yaml.safe_load((DEPLOY / "kubernetes" / "kserve-logger.yaml").read_text())
    custom = [d for d in manifests if is_custom(d)] + [example]
    assert sorted(d["kind"] for d in custom) == [
        "InferenceService",
        "PrometheusRule",
        "ServiceMonitor",
    ]
    for document in custom:
        errors = list(custom_resource_validator(document).iter_errors(document))
        assert not errors, [f"{document['kind']}: {e.json_path}: {e.message}" for e in errors]


@pytest.mark.parametrize(
    ("kind", "name", "tamper"),
    [
        ("ServiceMonitor", "audit-trail", lambda d: d["spec"]["endpoints"][0].update(prot=1)),
        ("ServiceMonitor", "audit-trail", lambda d: d["spec"]["endpoints"][0].update(port=8000)),
        ("PrometheusRule", "audit-trail", lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr")),
    ],
)
def test_the_crd_schemas_refuse_what_the_api_server_would(
    manifests: list[dict[str, Any]], kind: str, name: str, tamper: Any
) -> None:
    document = copy.deepcopy(named(manifests, kind, name))
    tamper(document)
    assert list(custom_resource_validator(document).iter_errors(document))


def test_the_kserve_example_is_refused_with_an_unknown_logger_field() -> None:
    example = yaml.safe_load((DEPLOY / "kubernetes" / "kserve-logger.yaml").read_text())
    example["spec"]["predictor"]["logger"]["mod"] = "all"
    assert list(custom_resource_validator(example).iter_errors(example))


def test_the_example_overlay_is_valid_and_sets_what_is_particular() -> None:
    documents = render(DEPLOY / "overlays" / "example")
    for document in documents:
        if is_custom(document):
            assert not list(custom_resource_validator(document).iter_errors(document))
            assert document["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    images = {c["image"] for _, c in project_containers(documents)}
    assert images == {"registry.example.org/audit-trail:0.1.0"}
    egress = named(documents, "NetworkPolicy", "log-database-egress")["spec"]["egress"]
    assert egress[0]["to"] == [{"ipBlock": {"cidr": "10.20.30.40/32"}}]
    for name, variable, value in (
        ("decision-log", "AUDIT_TRAIL_LOG_ORIGIN", "audit.example.org/log"),
        ("verifier", "AUDIT_TRAIL_VERIFIER_NAME", "verifier.example.org/witness"),
    ):
        container = pod_spec(named(documents, "Deployment", name))["containers"][0]
        env = [v for v in container["env"] if v["name"] == variable]
        assert env == [{"name": variable, "value": value}]
        # The patch replaced one variable and kept the rest.
        assert len(container["env"]) == len(
            pod_spec(named(render(DEPLOY / "kubernetes"), "Deployment", name))["containers"][0][
                "env"
            ]
        )


# -- what the code reads -------------------------------------------------------------------


def settings_variables(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def required_variables(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {
        f"{prefix}{name}".upper()
        for name, field in settings.model_fields.items()
        if field.is_required()
    }


def command_line_variables() -> set[str]:
    """Every envvar an option of the `audit-trail` command reads."""
    names: set[str] = set()
    pending = [typer.main.get_command(cli_app)]
    while pending:
        command = pending.pop()
        for parameter in command.params:
            envvar = getattr(parameter, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
            elif envvar:
                names.update(envvar)
        pending.extend(getattr(command, "commands", {}).values())
    return names


COMMON = (
    command_line_variables()
    | settings_variables(HttpLimits)
    | {metrics.MULTIPROC_DIR_VARIABLE, metrics.TOKEN_VARIABLE}
)
READ_BY = {
    "serve": settings_variables(DecisionLogSettings) | COMMON,
    "projections": settings_variables(DecisionLogSettings) | COMMON,
    "migrate": settings_variables(DecisionLogSettings) | COMMON,
    "verifier": settings_variables(VerifierSettings) | COMMON,
}


def project_containers(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (workload["metadata"]["name"], container)
        for workload in workloads(manifests)
        for container in pod_spec(workload)["containers"]
        if container["image"].rsplit(":", 1)[0].endswith("audit-trail")
    ]


def test_every_environment_variable_is_one_the_code_reads(
    manifests: list[dict[str, Any]],
) -> None:
    containers = project_containers(manifests)
    assert len(containers) == 5
    for workload, container in containers:
        command = container["args"][1]
        given = {variable["name"] for variable in container.get("env", [])}
        unread = given - READ_BY[command]
        assert not unread, f"{workload} sets variables nothing reads: {sorted(unread)}"


def test_the_services_get_every_setting_they_require(manifests: list[dict[str, Any]]) -> None:
    for name, settings in (("decision-log", DecisionLogSettings), ("verifier", VerifierSettings)):
        container = pod_spec(named(manifests, "Deployment", name))["containers"][0]
        given = {variable["name"] for variable in container["env"]}
        # DATABASE_URL stands for AUDIT_TRAIL_DATABASE_URL (its other alias).
        given |= {"AUDIT_TRAIL_DATABASE_URL"} if "DATABASE_URL" in given else set()
        assert required_variables(settings) <= given, name


def test_the_decision_log_leaves_projection_to_the_projector(
    manifests: list[dict[str, Any]],
) -> None:
    log = pod_spec(named(manifests, "Deployment", "decision-log"))["containers"][0]
    env = {variable["name"]: variable.get("value") for variable in log["env"]}
    assert env["AUDIT_TRAIL_RUN_PROJECTOR"] == "false"
    projector = pod_spec(named(manifests, "Deployment", "decision-projector"))["containers"][0]
    assert projector["args"][:3] == ["audit-trail", "projections", "follow"]
    # The projector's series are measured where it runs, so that is where they are scraped.
    port = projector["args"][projector["args"].index("--port") + 1]
    service = named(manifests, "Service", "decision-projector")
    assert service["metadata"]["labels"]["audit-trail/metrics"] == "scraped"
    assert str(service["spec"]["ports"][0]["port"]) == port
    assert probe_path(projector, "livenessProbe") == "/livez"


def test_worker_metrics_are_added_up_from_an_emptydir(manifests: list[dict[str, Any]]) -> None:
    spec = pod_spec(named(manifests, "Deployment", "decision-log"))
    container = spec["containers"][0]
    assert container["args"][container["args"].index("--workers") + 1] == "2"
    folder = {v["name"]: v.get("value") for v in container["env"]}[metrics.MULTIPROC_DIR_VARIABLE]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == folder)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume


def probe_path(container: dict[str, Any], probe: str) -> str:
    path: str = container[probe]["httpGet"]["path"]
    return path


def test_probes_point_at_livez_and_readyz(manifests: list[dict[str, Any]]) -> None:
    routes = {
        "decision-log": {route.path for route in decision_log_health.routes},
        "verifier": {route.path for route in verifier_public.routes},
    }
    for name, paths in routes.items():
        deployment = named(manifests, "Deployment", name)
        container = pod_spec(deployment)["containers"][0]
        assert probe_path(container, "livenessProbe") == "/livez"
        assert probe_path(container, "startupProbe") == "/livez"
        assert probe_path(container, "readinessProbe") == "/readyz"
        assert {"/livez", "/readyz"} <= paths, name
        # The endpoint drops out of the Service before the process is asked to stop.
        sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert 0 < sleep < pod_spec(deployment)["terminationGracePeriodSeconds"]


def test_memory_fits_two_workers_under_overload(manifests: list[dict[str, Any]]) -> None:
    resources = pod_spec(named(manifests, "Deployment", "decision-log"))["containers"][0][
        "resources"
    ]

    def mebibytes(quantity: str) -> int:
        number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
        return int(number) * (1024 if unit == "Gi" else 1)

    # supervisor ~107 MiB + resource tracker ~12 MiB + 2 workers at up to 135 MiB each under
    # overload, up to ~158 MiB each at the peak of 1,000-event batches.
    assert mebibytes(resources["requests"]["memory"]) >= 107 + 12 + 2 * 135
    assert mebibytes(resources["limits"]["memory"]) >= 107 + 12 + 2 * 158 + 64


def test_every_pod_meets_the_restricted_pod_security_standard(
    manifests: list[dict[str, Any]],
) -> None:
    """The namespace enforces `restricted`: a pod that does not meet it is never created.
    (kubernetes.io/docs/concepts/security/pod-security-standards, Restricted)"""
    namespace = named(manifests, "Namespace", "audit-trail")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        pod_context = spec.get("securityContext", {})
        assert not any("hostPath" in volume for volume in spec.get("volumes", []))
        for container in spec["containers"]:
            context = {**pod_context, **container.get("securityContext", {})}
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert context.get("runAsNonRoot") is True, where
            assert context.get("runAsUser", 1) != 0, where
            assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities") == {"drop": ["ALL"]}, where
            assert not context.get("privileged"), where


# -- the verifier apart ----------------------------------------------------------------------


def secret_names(container: dict[str, Any]) -> set[str]:
    return {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }


def database_secret(container: dict[str, Any], variable_name: str) -> str:
    variable = next(v for v in container["env"] if v["name"] == variable_name)
    name: str = variable["valueFrom"]["secretKeyRef"]["name"]
    return name


def test_the_verifier_runs_alone_with_its_own_database(manifests: list[dict[str, Any]]) -> None:
    verifier = named(manifests, "Deployment", "verifier")
    assert verifier["spec"]["replicas"] == 1
    assert verifier["spec"]["strategy"] == {"type": "Recreate"}
    container = pod_spec(verifier)["containers"][0]
    assert container["args"][:2] == ["audit-trail", "verifier"]
    own = database_secret(container, "AUDIT_TRAIL_VERIFIER_DATABASE_URL")
    for workload, log_container in project_containers(manifests):
        if workload != "verifier":
            assert own not in secret_names(log_container), workload
    assert own != database_secret(
        pod_spec(named(manifests, "Deployment", "decision-log"))["containers"][0], "DATABASE_URL"
    )
    # Its PostgreSQL keeps its data on a volume of its own.
    postgres = named(manifests, "StatefulSet", "verifier-postgres")
    assert postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    password = database_secret(pod_spec(postgres)["containers"][0], "POSTGRES_PASSWORD")
    assert password == own


def test_the_verifiers_disruption_budget_never_blocks_a_drain(
    manifests: list[dict[str, Any]],
) -> None:
    budget = named(manifests, "PodDisruptionBudget", "verifier")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "verifier"}}}


def test_the_log_and_the_verifier_find_each_other_by_service(
    manifests: list[dict[str, Any]],
) -> None:
    def env(name: str) -> dict[str, str]:
        container = pod_spec(named(manifests, "Deployment", name))["containers"][0]
        return {v["name"]: v.get("value", "") for v in container["env"]}

    verifier_service = named(manifests, "Service", "verifier")
    port = verifier_service["spec"]["ports"][0]["port"]
    assert env("decision-log")["AUDIT_TRAIL_VERIFIER_URL"] == f"http://verifier:{port}"
    log_service = named(manifests, "Service", "decision-log")
    assert log_service["spec"]["ports"][0]["port"] == 80
    assert env("verifier")["AUDIT_TRAIL_VERIFIER_LOG_URL"] == "http://decision-log"


# -- one image --------------------------------------------------------------------------------


def test_one_image_runs_every_process(manifests: list[dict[str, Any]]) -> None:
    images = {
        container["image"]
        for workload in workloads(manifests)
        for container in pod_spec(workload)["containers"]
        if container["name"] != "postgres"
    }
    assert images == {IMAGE}
    for _, container in project_containers(manifests):
        assert container["args"][0] == "audit-trail"


def test_the_dockerfile_builds_that_image() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    assert instructions[-1].startswith('CMD ["audit-trail", "serve"')
    assert any(line.startswith("USER 10001") for line in instructions)
    # Both services' migrations ship in the image, where the code is told to find them.
    assert "COPY migrations ./migrations" in instructions
    assert "AUDIT_TRAIL_MIGRATIONS_DIR=/app/migrations" in dockerfile
    assert "AUDIT_TRAIL_VERIFIER_MIGRATIONS_DIR=/app/migrations/verifier" in dockerfile
    assert (PROJECT_ROOT / "migrations" / "verifier" / "env.py").exists()
    # The build context is what the image is built from, and nothing else (no keys, no .venv).
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignored
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.MULTILINE))
    sources = {source for line in copied for source in line.split()}
    assert sources == {"pyproject.toml", "README.md", "services", "migrations"}
    assert {f"!{source}" if "." in source else f"!{source}/" for source in sources} <= set(ignored)


# -- network policies -------------------------------------------------------------------------

Pod = dict[str, str]
PROMETHEUS: Pod = {"app.kubernetes.io/name": "prometheus", "namespace": "monitoring"}
STRANGER: Pod = {"app": "stranger", "namespace": "elsewhere"}
LOG_DATABASE = "192.0.2.10"


def pod(manifests: list[dict[str, Any]], kind: str, name: str) -> Pod:
    spec = named(manifests, kind, name)["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
    return {**template["metadata"]["labels"], "namespace": "audit-trail"}


def selects(selector: dict[str, Any], labels: Pod) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def peer_matches(peer: dict[str, Any], other: Pod | str) -> bool:
    if isinstance(other, str):  # an address outside the cluster
        return "ipBlock" in peer and peer["ipBlock"]["cidr"] == f"{other}/32"
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        namespace = {"kubernetes.io/metadata.name": other["namespace"]}
        if not selects(peer["namespaceSelector"], namespace):
            return False
    elif other["namespace"] != "audit-trail":
        return False
    return selects(peer.get("podSelector", {}), other)


def allowed(
    policies: list[dict[str, Any]], direction: str, subject: Pod, other: Pod | str, port: int
) -> bool:
    """Whether the policies selecting `subject` let `direction` traffic to/from `other` on
    `port` (NetworkPolicy semantics: denied once any policy of that direction selects the pod,
    then allowed if any rule of any of them matches)."""
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    isolating = [
        p
        for p in policies
        if subject["namespace"] == "audit-trail"
        and direction in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], subject)
    ]
    if not isolating:
        return True
    for policy in isolating:
        for rule in policy["spec"].get(rules_key, []):
            ports = rule.get("ports")
            if ports and not any(p["port"] == port for p in ports):
                continue
            peers = rule.get(peers_key)
            if not peers or any(peer_matches(peer, other) for peer in peers):
                return True
    return False


def connects(
    policies: list[dict[str, Any]], source: Pod, destination: Pod | str, port: int
) -> bool:
    egress = allowed(policies, "Egress", source, destination, port)
    if isinstance(destination, str) or destination["namespace"] != "audit-trail":
        return egress
    return egress and allowed(policies, "Ingress", destination, source, port)


def test_network_policies_let_only_what_must_talk_talk(manifests: list[dict[str, Any]]) -> None:
    policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
    log = pod(manifests, "Deployment", "decision-log")
    verifier = pod(manifests, "Deployment", "verifier")
    store = pod(manifests, "StatefulSet", "verifier-postgres")
    projector = pod(manifests, "Deployment", "decision-projector")
    migrate = pod(manifests, "Job", "audit-trail-migrate")
    checker = pod(manifests, "CronJob", "projections-verify")

    # The API is open to anyone on 8000, and only there.
    assert connects(policies, STRANGER, log, 8000)
    assert not connects(policies, STRANGER, log, 5432)
    # The verifier answers the log and Prometheus, no one else.
    assert connects(policies, log, verifier, 8001)
    assert connects(policies, PROMETHEUS, verifier, 8001)
    assert not connects(policies, STRANGER, verifier, 8001)
    assert not connects(policies, projector, verifier, 8001)
    # The projector answers Prometheus alone.
    assert connects(policies, PROMETHEUS, projector, 9100)
    assert not connects(policies, STRANGER, projector, 9100)
    assert not connects(policies, log, projector, 9100)
    # The verifier reaches its own store and the log's API, never the log's database.
    assert connects(policies, verifier, store, 5432)
    assert connects(policies, verifier, log, 8000)
    assert not connects(policies, verifier, LOG_DATABASE, 5432)
    # Its store answers the verifier alone.
    for other in (log, projector, migrate, checker, STRANGER):
        assert not connects(policies, other, store, 5432)
    # Everything of the log reaches the log's database; the log reaches nothing else.
    for client in (log, projector, migrate, checker):
        assert connects(policies, client, LOG_DATABASE, 5432)
    assert not connects(policies, log, "198.51.100.7", 443)
    assert not connects(policies, projector, log, 8000)
    # Every pod may resolve names.
    for subject in (log, verifier, store, projector, migrate, checker):
        assert allowed(policies, "Egress", subject, "10.96.0.10", 53)


def test_every_pod_of_the_namespace_starts_denied(manifests: list[dict[str, Any]]) -> None:
    deny = named(manifests, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_schemas_readme_names_every_schema() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for name in CUSTOM_RESOURCE_SCHEMAS.values():
        assert name in readme
        assert (SCHEMAS / name).exists()


def test_nothing_secret_is_committed(manifests: list[dict[str, Any]]) -> None:
    assert not [d for d in manifests if d["kind"] == "Secret"]
