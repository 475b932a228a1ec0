"""Taking a lab down: `down`, the rollback of a failed `up`, and `cleanup`.

It is the same routine each time: end every process of the lab (processes.end(): the
recorded ones by PID, checked against their start time, then the lab's whole cgroup with
`cgroup.kill`, or the recorded processes' descendants where there is no cgroup, and any
process still inside a lab namespace), remove the emptied cgroup, delete the namespaces
(their veths and nftables tables go with them), delete any link that carries the lab's
ownership altname (there should be none outside the namespaces) and remove the lab's
directory. Nothing that is neither recorded in the state, nor marked with the lab's
altname, nor in the lab's cgroup `vpclab.<lab>` is touched.

What is reported is what was verified: a process counts as stopped once it is seen gone.
If one survives SIGKILL (stuck in the kernel), the namespaces, the cgroup and the state
stay, and the error names it, so that a later `cleanup` can finish the job.
"""
from __future__ import annotations

import os
import shutil

from netns_setup import cgroup, kernel

from dataplane.model import names

from . import processes
from .state import LabError, State, state_labs


def teardown(st: State) -> list[str]:
    """Remove everything of the lab `st` describes (see the module docstring)."""
    st.data["status"] = "stopping"
    if os.path.isdir(st.dir):
        with State.locked(st.lab):       # the supervisor restarts nothing from now on
            st.save()
    done = _remove(st.lab, list(st.data.get("namespaces", [])),
                   st.data.get("processes", []), processes.cgroup_path(st))
    shutil.rmtree(st.dir, ignore_errors=True)
    done.append(f"directory {st.dir}")
    _remove_run_dir_if_empty()
    return done


def _remove_run_dir_if_empty() -> None:
    try:
        os.rmdir(names.RUN_DIR)        # only succeeds when no other lab has state
    except OSError:
        pass


def _remove(lab: str, namespaces: list[str], recorded: list[dict],
            group: str | None) -> list[str]:
    """End the lab's processes, then remove its cgroup and `namespaces` (they are the
    lab's: recorded or marked) and its marked links. Raises LabError, having removed
    nothing but processes, if a process outlives SIGKILL."""
    present = [n for n in namespaces if kernel.netns_exists(n)]
    done, running = processes.end(recorded, present, group)
    if running:
        raise LabError(f"lab {lab}: {len(running)} process(es) still running after SIGKILL "
                       f"({'; '.join(running)}); its namespaces and state are kept, run "
                       f"`vpclab cleanup {lab}` once they are gone")
    if group is not None and os.path.isdir(group):
        if not cgroup.remove(group):
            raise LabError(f"lab {lab}: cgroup {group} could not be removed")
        done.append(f"cgroup {group}")
    # Instances before VPCs: deeper names first.
    present.sort(key=lambda n: (-n.count("."), n))
    for n in present:
        if kernel.remove_netns(n):
            done.append(f"namespace {n}")
    for idx, ifname, marks in kernel.marked_links(None, names.mark_prefix(lab)):
        kernel.delete_link(None, idx)
        done.append(f"link {ifname} ({marks[0]})")
    return done


def marked_namespaces() -> dict[str, list[str]]:
    """{lab: [namespaces]} of every namespace whose `lo` carries a vpclab mark."""
    out: dict[str, list[str]] = {}
    for n in kernel.list_netns():
        for m in kernel.netns_mark(n):
            lab = names.lab_of_mark(m)
            if lab and m == names.lo_altname(lab) and n.startswith(lab + "."):
                out.setdefault(lab, []).append(n)
    return out


def _lab_cgroups() -> dict[str, str]:
    """{lab: its cgroup} of every cgroup named `vpclab.<lab>`."""
    return {lab: g for g in cgroup.groups(names.cgroup_name(""))
            if (lab := names.lab_of_cgroup(g))}


def known_labs() -> list[str]:
    """Every lab anything is left of: a state directory, a marked namespace or a cgroup
    (what `cleanup` looks at), running or not."""
    return sorted(set(state_labs()) | set(marked_namespaces()) | set(_lab_cgroups()))


def down(lab: str) -> list[str]:
    st = State.load(lab)
    if st is None:
        raise LabError(f"no lab {lab} is up (no state in {names.lab_dir(lab)}); "
                       f"`vpclab cleanup` removes leftovers without state")
    if st.data.get("status") == "building" and st.owner_alive():
        raise LabError(f"lab {lab} is being built by pid {st.data['owner_pid']}")
    return teardown(st)


def cleanup(lab: str | None = None, everything: bool = False) -> dict[str, list[str]]:
    """Remove leftovers; returns {lab: [what was removed]}.

    lab=None, everything=False: labs whose `up`/`down` never finished (their owner is
    gone) and marked namespaces that no state file mentions. everything=True: every
    vpclab lab, running or not. lab="x": that lab, whatever its state.
    """
    report: dict[str, list[str]] = {}
    marked = marked_namespaces()
    groups = _lab_cgroups()
    labs = set(state_labs()) | set(marked) | set(groups)
    if lab is not None:
        labs = {lab} & labs
    for name in sorted(labs):
        try:
            st = State.load(name) if os.path.isdir(names.lab_dir(name)) else None
        except LabError:
            st = None          # unreadable state: the marks and the directory remain
        if st is not None and st.lab != name:
            st = None
        if lab is None and not everything and st is not None:
            if st.data.get("status") == "up" or st.owner_alive():
                continue
        done: list[str] = []
        if st is not None:
            done += teardown(st)
        group = cgroup.path_of(groups[name]) if name in groups else None
        done += _remove(name, marked.get(name, []), [], group)
        if os.path.isdir(names.lab_dir(name)):
            shutil.rmtree(names.lab_dir(name), ignore_errors=True)
            done.append(f"directory {names.lab_dir(name)}")
        _remove_run_dir_if_empty()
        report[name] = done
    return report
