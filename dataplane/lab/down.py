"""Taking a lab down: `down`, the rollback of a failed `up`, and `cleanup`.

It is the same routine each time: stop the recorded processes by PID (checked against
their start time), then any process still inside a lab namespace, delete the namespaces
(their veths and nftables tables go with them), delete any link that carries the lab's
ownership altname (there should be none outside the namespaces) and remove the lab's
directory. Nothing that is neither recorded in the state nor marked with the lab's
altname is touched.
"""
from __future__ import annotations

import os
import shutil

from netns_setup import kernel, procs

from dataplane.model import names

from .state import LabError, State, state_labs


def teardown(st: State) -> list[str]:
    """Remove everything of the lab `st` describes (see the module docstring)."""
    lab = st.lab
    done: list[str] = []
    st.data["status"] = "stopping"
    if os.path.isdir(st.dir):
        st.save()
    for p in reversed(st.data.get("processes", [])):
        if procs.stop(p["pid"], p["start"]):
            done.append(f"process {p['pid']} ({p['role']})")
    done += _remove_namespaces(lab, list(st.data.get("namespaces", [])))
    shutil.rmtree(st.dir, ignore_errors=True)
    done.append(f"directory {st.dir}")
    _remove_run_dir_if_empty()
    return done


def _remove_run_dir_if_empty() -> None:
    try:
        os.rmdir(names.RUN_DIR)        # only succeeds when no other lab has state
    except OSError:
        pass


def _remove_namespaces(lab: str, candidates: list[str]) -> list[str]:
    """Delete `candidates` (they are the lab's: recorded or marked), processes first."""
    done: list[str] = []
    # Instances before VPCs: deeper names first.
    present = [n for n in candidates if kernel.netns_exists(n)]
    present.sort(key=lambda n: (-n.count("."), n))
    for n in present:
        ino = kernel.netns_inode(n)
        if ino is not None:
            for pid in procs.pids_in_netns(ino):
                if pid != os.getpid() and procs.stop(pid, procs.start_time(pid)):
                    done.append(f"process {pid} (left in {n})")
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
    labs = set(state_labs()) | set(marked)
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
        done += _remove_namespaces(name, marked.get(name, []))
        if os.path.isdir(names.lab_dir(name)):
            shutil.rmtree(names.lab_dir(name), ignore_errors=True)
            done.append(f"directory {names.lab_dir(name)}")
        _remove_run_dir_if_empty()
        report[name] = done
    return report
