"""The house's layering rules (DESIGN.md, "Layout for growth"), checked on the source:
`vpclab validate` runs where the compiled engine cannot be imported; nothing in
dataplane/ imports bench/ or touches sys.path; compile/ imports neither the forwarder
nor netns_setup; lab/ reaches the forwarder only through its control socket, the spec
and plain constants; and the constants copied out of the engine agree with it."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DATAPLANE = REPO / "dataplane"

# A meta-path hook that makes `dataplane._native` unimportable, as on a machine where the
# engine was never built; then the CLI, as `vpclab` runs it.
WITHOUT_ENGINE = """
import sys
class NoEngine:
    def find_spec(self, name, path=None, target=None):
        if name == "dataplane._native" or name.startswith("dataplane._native."):
            raise ImportError("dataplane._native is blocked by the test")
        return None
sys.meta_path.insert(0, NoEngine())
try:
    import dataplane.forwarder.engine
except ImportError:
    pass
else:
    sys.exit("the block does not work")
from dataplane.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_ENGINE, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_validate_runs_without_the_compiled_engine() -> None:
    proc = run_without_engine("validate", "examples/privatelink.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: lab pl: 2 VPCs")


def test_validate_reports_problems_without_the_compiled_engine(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "examples" / "privatelink.yaml").read_text()
                   .replace("subnets: [app-a, app-b], security_groups: [endpoint-sg]",
                            "subnets: [app-a, nope], security_groups: [endpoint-sg]"))
    proc = run_without_engine("validate", str(bad))
    assert proc.returncode == 2
    assert "vpcs.consumer.endpoints.web-ep.subnets[1]: unknown subnet 'nope'" in proc.stderr + proc.stdout


def imports(path: pathlib.Path) -> list[str]:
    """Every module `path` imports, relative imports resolved to dotted names."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]
    return out


def sources(under: str) -> list[pathlib.Path]:
    return sorted((DATAPLANE / under).rglob("*.py")) if under else sorted(DATAPLANE.rglob("*.py"))


def test_the_import_reader_sees_relative_imports() -> None:
    found = imports(DATAPLANE / "lab" / "blueprint.py")
    assert "dataplane.lab.realise_vpc" in found and "dataplane.compile.hyperplane" in found


def test_nothing_in_dataplane_imports_bench_or_touches_sys_path() -> None:
    offenders = []
    for path in sources(""):
        text = path.read_text()
        if "sys.path" in text:
            offenders.append(f"{path.relative_to(REPO)}: sys.path")
        offenders += [f"{path.relative_to(REPO)}: imports {m}" for m in imports(path)
                      if m == "bench" or m.startswith("bench.")]
    assert offenders == []


@pytest.mark.parametrize("floor,forbidden", [
    ("compile", ("dataplane.forwarder", "dataplane._native", "netns_setup", "dataplane.lab")),
    ("model", ("dataplane.forwarder", "dataplane._native", "netns_setup", "dataplane.lab",
               "dataplane.compile")),
])
def test_pure_floors_import_neither_the_engine_nor_the_kernel_side(floor, forbidden) -> None:
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in sources(floor) for m in imports(p)
                 if m.startswith(forbidden)]
    assert offenders == []


def test_lab_reaches_the_forwarder_only_through_its_socket_and_constants() -> None:
    allowed = ("dataplane.forwarder.control", "dataplane.forwarder.frames")
    offenders = [f"{p.relative_to(REPO)}: {m}" for p in sources("lab") for m in imports(p)
                 if (m.startswith("dataplane.forwarder") and m != "dataplane.forwarder"
                     and not any(m == a or m.startswith(a + ".") for a in allowed))
                 or m.startswith("dataplane._native")]
    assert offenders == []


def test_the_proxy_engine_knows_no_personality_and_the_personalities_no_packet_engine() -> None:
    """dataplane/services/proxy serves API Gateway and the ALB alike: it imports neither; API
    Gateway's front end and the ALB's nodes run in their own processes, beside the
    forwarder, not in it, and neither personality imports the other."""
    assert all(sources(f"services/{kind}") for kind in ("proxy", "apigw", "alb"))
    engine = [f"{p.relative_to(REPO)}: {m}" for p in sources("services/proxy") for m in imports(p)
              if m.startswith(("dataplane.services.apigw", "dataplane.services.alb",
                               "dataplane.services.serving", "dataplane.forwarder",
                               "dataplane.lab", "dataplane.compile", "dataplane._native"))]
    personalities = [f"{p.relative_to(REPO)}: {m}"
                     for kind, other in (("apigw", "alb"), ("alb", "apigw"))
                     for p in sources(f"services/{kind}") for m in imports(p)
                     if (m.startswith("dataplane.forwarder") and m != "dataplane.forwarder"
                         and not m.startswith("dataplane.forwarder.control"))
                     or m.startswith(("dataplane._native", "dataplane.lab",
                                      f"dataplane.services.{other}"))]
    assert engine == [] and personalities == []


def test_vpclab_bench_runs_the_suite_as_a_child_process(monkeypatch, tmp_path) -> None:
    from dataplane.cli import bench
    from dataplane.cli.common import CliError
    monkeypatch.setattr(bench, "REPO", REPO)      # an installed vpclab (make sanitize) too
    assert bench.suite_argv(["--quick"]) == [sys.executable, "-m", "bench.e2e", "--quick"]
    assert bench.suite_argv(["e2e", "--quick"]) == [sys.executable, "-m", "bench.e2e", "--quick"]
    assert bench.suite_argv(["apigw", "--quick"]) == [sys.executable, "-m", "bench.apigw", "--quick"]
    monkeypatch.setattr(bench, "REPO", tmp_path)
    with pytest.raises(CliError, match="runs from a source checkout"):
        bench.suite_argv([])


def test_constants_copied_from_the_engine_agree_with_it() -> None:
    from dataplane._native import lib
    from dataplane.forwarder.frames import MAX_FRAME
    from dataplane.forwarder.io import max_frame
    from dataplane.forwarder.engine import Engine, EngineError
    from dataplane.model.constants import (MAX_BACKENDS, MAX_FORWARDER_PORTS,
                                           MAX_FORWARDER_SERVICES, MAX_LINK_ROUTES,
                                           MAX_SG_RULES)
    assert MAX_FRAME == max_frame() == lib.hp_io_max_frame(0)
    assert MAX_FORWARDER_PORTS == lib.HP_MAX_PORTS
    assert MAX_BACKENDS == lib.HP_MAX_BACKENDS
    assert MAX_SG_RULES == lib.HP_MAX_SG_RULES
    assert MAX_LINK_ROUTES == lib.HP_LINK_MAX_ROUTES
    engine = Engine(flow_capacity=1024)       # as the daemon makes it: default services
    engine.set_port(0, "02:00:00:00:00:01", ["10.0.0.1"])
    engine.set_port(1, "02:00:00:00:00:02", ["10.1.0.1"])
    for n in range(MAX_FORWARDER_SERVICES):
        engine.add_service(0, 1, "10.0.0.1", n + 1, "tcp")
    with pytest.raises(EngineError, match="services are in use"):
        engine.add_service(0, 1, "10.0.0.1", 65000, "tcp")
