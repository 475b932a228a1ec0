"""vpclab from Python: a lab built, brought up, used and taken down by a script or a test.

    from dataplane import Lab

    with Lab.from_file("examples/privatelink.yaml", name="mylab") as lab:
        r = lab.exec("consumer/client", "curl -s http://10.0.1.50/", check=True)
        print(r.stdout, lab.status()["status"], len(lab.flows()))

`dataplane.Lab` is the model's builder (`dataplane.model.Lab`: `add_vpc`, `add_subnet`,
`add_instance`, every kind's `add_…`) grown with the run-time methods below, so one
object is both what the lab is and the handle to run it; a test that builds a topology
in Python brings up the very object it built. It is a subclass here, not methods of the
model, because the model stays pure (it never touches the kernel, DESIGN.md's floors),
and a handle apart from the builder would only repeat its name and its topology.

* `with lab:` brings it up and always takes it down: when the body raises, on
  KeyboardInterrupt, and on SIGTERM while it comes up or goes down (those signals are
  held back for that time, as `vpclab up` does, and raised once it is safe). A lab that
  already has state is refused and left alone: a `Lab` only takes down what it made.
* `up()`, `down()` do the same by hand; `down()` returns what it removed.
* `exec(target, command, check=, timeout=, input=, link=)` runs a command in an
  instance (`vpc/instance`), a VPC router (`vpc`), `apigw` (with `link=` one VPC link's
  routing domain) or `internet`, and returns a `subprocess.CompletedProcess` (text
  stdout and stderr, returncode). It runs `vpclab exec` itself (the same code: the
  instance's namespace, the VPC's resolver, the lab's CA, the lab's cgroup), as a child
  process, since entering a namespace cannot be undone in a threaded process (output
  that is not UTF-8 is decoded with replacement characters). A string
  is run by /bin/sh, a list as it is. `check=True` raises `ExecError` (a
  CalledProcessError whose message carries the stderr) on a non-zero exit; past
  `timeout` seconds the command is killed and subprocess.TimeoutExpired is raised.
* `status()`, `flows(health=)`, `stats()` are what `vpclab status --json`, `flows` and
  `stats` show, from the same functions (dataplane/lab/status.py).
* `leftovers(name)` lists what of a lab is still anywhere after `down` (namespaces,
  marked links, its directory, its cgroup): the pytest plugin checks it is empty.

Errors: a bad topology raises `TopologyError` (every problem, with paths) before
anything is made; a failed `up` raises `LabError` after removing everything it made.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from typing import Any, Sequence

from netns_setup import cgroup, kernel

from . import lab as labmod
from .lab import LabError, State
from .lab.progress import Interrupted, check_interrupt, held_signals
from .model import TopologyError, check_document, load, names
from .model import Lab as ModelLab

__all__ = ["Lab", "LabError", "TopologyError", "ExecError", "leftovers"]

EXEC_TIMEOUT_S = 60.0
# `python -m dataplane.cli.main`, importing this very dataplane (wherever it was found).
_PACKAGE_HOME = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ExecError(subprocess.CalledProcessError):
    """`lab.exec(..., check=True)` of a command that failed; `.stdout`, `.stderr`."""

    def __str__(self) -> str:
        err = (self.stderr or "").strip()
        return super().__str__() + (f": {err[-2000:]}" if err else "")


class Lab(ModelLab):
    """A lab's topology (the model's builder) that can also be brought up and used."""

    @classmethod
    def from_file(cls, path: str | os.PathLike, name: str | None = None) -> "Lab":
        """The lab in a topology file, checked; `name` runs it under another name."""
        return cls.from_model(load(path), name)

    @classmethod
    def from_document(cls, doc: Any, name: str | None = None) -> "Lab":
        """A topology as a plain document (what its YAML gives), checked."""
        problems = check_document(doc)
        if problems:
            raise TopologyError(problems)
        return cls.from_model(ModelLab.from_dict(doc), name)

    @classmethod
    def from_model(cls, lab: ModelLab, name: str | None = None) -> "Lab":
        """A `dataplane.model.Lab` (built or loaded elsewhere) as a runnable Lab."""
        doc = lab.to_dict()
        if name is not None:
            doc["lab"] = name
        out = cls.from_dict(doc)
        out.check()
        return out

    # -- life ------------------------------------------------------------------------
    def up(self, progress: bool = False) -> "Lab":
        """Bring the lab up (`vpclab up`); LabError, with nothing left, if it fails.
        SIGINT/SIGTERM meanwhile roll it back and raise KeyboardInterrupt."""
        if os.geteuid() != 0:
            raise LabError("vpclab needs root to make namespaces (run it with sudo)")
        if State.load(self.name) is not None:
            raise LabError(f"lab {self.name} already exists (state in "
                           f"{names.lab_dir(self.name)}); a Lab brings up only labs it "
                           f"makes: `vpclab down {self.name}` first")
        with held_signals(labmod.request_interrupt) as caught:
            try:
                labmod.up(self, progress=progress)
            except LabError as e:
                if caught:
                    raise KeyboardInterrupt(str(e)) from e
                raise
        if caught:       # after up's last look at it: the lab is up, and is not wanted
            with contextlib.suppress(Interrupted):
                check_interrupt()           # forget the request
            self.down()
            raise KeyboardInterrupt(f"interrupted ({caught[0]}) as lab {self.name} came "
                                    f"up; it was taken down")
        return self

    def down(self) -> list[str]:
        """Take the lab down (`vpclab down`); returns what was removed and seen gone.
        A lab that is not up (no state) is nothing to do."""
        if State.load(self.name) is None:
            return []
        with held_signals() as caught:
            done = labmod.down(self.name)
        if caught:
            raise KeyboardInterrupt(f"interrupted ({caught[0]}) while lab {self.name} "
                                    f"went down; it is down")
        return done

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- use -------------------------------------------------------------------------
    @property
    def state(self) -> State:
        st = State.load(self.name)
        if st is None or st.data.get("status") != "up":
            raise LabError(f"lab {self.name} is not up")
        return st

    def exec(self, target: str, command: str | Sequence[str], *, check: bool = False,
             timeout: float | None = EXEC_TIMEOUT_S, input: str | None = None,
             link: str | None = None) -> subprocess.CompletedProcess:
        """Run `command` in `target` (see the module docstring); its result."""
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        cli = [sys.executable, "-m", "dataplane.cli.main", "exec", "-l", self.name, target]
        if link is not None:
            cli += ["--link", link]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (_PACKAGE_HOME, os.environ.get("PYTHONPATH")) if p))
        self.state     # a clear error when the lab is not up
        result = subprocess.run(cli + ["--"] + argv, capture_output=True, text=True,
                                errors="replace", timeout=timeout, input=input, env=env,
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise ExecError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def status(self) -> dict[str, Any]:
        """`vpclab status --json` of this lab."""
        return labmod.status(self.name)

    def flows(self, health: bool = False) -> list[dict[str, Any]]:
        """`vpclab flows`: the forwarder's flows, as dicts (the NLBs' health checks'
        too with `health`)."""
        return labmod.flows(self.state, health=health)

    def stats(self) -> dict[str, Any]:
        """`vpclab stats`: the forwarder's counters and drop reasons."""
        return labmod.stats(self.state)


def leftovers(lab: str) -> list[str]:
    """Everything of `lab` still visible anywhere: namespaces, links, files, its cgroup."""
    found = [f"namespace {n}" for n in kernel.list_netns() if n.startswith(lab + ".")]
    found += [f"root link {ifname}" for _, ifname, _ in
              kernel.marked_links(None, names.mark_prefix(lab))]
    if os.path.exists(names.lab_dir(lab)):
        found.append(f"directory {names.lab_dir(lab)}")
    found += [f"cgroup {g}" for g in cgroup.groups(names.cgroup_name(lab))
              if g == names.cgroup_name(lab)]
    return found
