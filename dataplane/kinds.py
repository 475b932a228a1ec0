"""The resource kinds vpclab knows, in the order `up` realises them: the one registry.

A kind (PrivateLink, HTTP-API VPC links, API Gateway, …) lives in up to three files, one per floor,
and is registered here with one `Kind(...)` line naming them:

* `model` — `dataplane.model.<kind>`: its dataclasses and builder methods (a
  `LabBuilder` and/or `VpcBuilder` mixin that `Lab` and `Vpc` inherit), `read(lab, doc)`
  and `write(lab, doc)` for its section of the topology document, `check(doc)` for the
  meaning of that section (the JSON schema checks its shape), and
  `eni_requests(lab, vpc)` for the Hyperplane ENIs it puts in a VPC; optionally
  `forwarder_services(lab)`, how many forwarder services it compiles to (checked
  against the engine's table), and `lab_problems(lab)`, what it can only check once
  addresses are planned;
* `compile` — `dataplane.compile.<kind>`: `contribute(ctx, draft)` adds its ports,
  security groups, services and health checks to the forwarder spec (a
  `compile.hyperplane.SpecDraft` of compile/spec.py's dataclasses), `dns_records(lab)`
  its names for the VPC resolvers (None: nothing to compile yet); optionally
  `resolver_args(lab)`, {vpc: extra dnsmasq arguments} for the VPC resolvers (Cloud
  Map forwards a private DNS namespace: `--server=/NAME/ADDRESS#PORT`);
* `realise` — `dataplane.lab.realise_<kind>` (None: nothing to make), each hook optional
  (a kind defines those it needs): `namespaces(lab)` it adds to the plan, `steps(build)`
  its steps in `up`, run once the Hyperplane's ENIs exist and before the forwarder
  starts, `state(lab)` its part of the state's `hyperplane` record,
  `status(lab, state, health)` its part of the Hyperplane's `vpclab status`,
  `record(lab, dir)` a top-level record of its own in the state file,
  `final_steps(lab, st)` steps after every VPC and the forwarder (API Gateway's front
  end, the ALBs' nodes), and `lab_status(lab, data)`, a top-level part of `status`.

Modules are named, not imported, here: the model is loaded with `dataplane.model`, the
compilers and realise steps only by `up`, `status` and the actions, so `vpclab validate`
loads neither the kernel side nor the compiled engine.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Kind:
    name: str
    model: str
    compile: str | None = None
    realise: str | None = None

    def model_module(self) -> ModuleType:
        return importlib.import_module(self.model)

    def compile_module(self) -> ModuleType | None:
        return importlib.import_module(self.compile) if self.compile else None

    def realise_module(self) -> ModuleType | None:
        return importlib.import_module(self.realise) if self.realise else None


KINDS: tuple[Kind, ...] = (
    Kind("privatelink", "dataplane.model.privatelink", "dataplane.compile.privatelink", "dataplane.lab.realise_privatelink"),
    Kind("alb", "dataplane.model.alb", "dataplane.compile.alb", "dataplane.lab.realise_alb"),
    Kind("vpc_link", "dataplane.model.vpc_link", "dataplane.compile.vpc_link", "dataplane.lab.realise_vpc_link"),
    Kind("cloud_map", "dataplane.model.cloud_map", "dataplane.compile.cloud_map", "dataplane.lab.realise_cloud_map"),
    Kind("api_gateway", "dataplane.model.api_gateway", "dataplane.compile.api_gateway", "dataplane.lab.realise_api_gateway"),
    Kind("flow_logs", "dataplane.model.flow_logs", None, "dataplane.lab.realise_flow_logs"),
)


def models() -> list[ModuleType]:
    return [k.model_module() for k in KINDS]


def compilers() -> list[ModuleType]:
    return [m for m in (k.compile_module() for k in KINDS) if m is not None]


def realisers() -> list[ModuleType]:
    return [m for m in (k.realise_module() for k in KINDS) if m is not None]


def builders(name: str) -> tuple[type, ...]:
    """The `name` mixins (`LabBuilder`, `VpcBuilder`) of every kind that has one."""
    return tuple(getattr(m, name) for m in models() if hasattr(m, name))
