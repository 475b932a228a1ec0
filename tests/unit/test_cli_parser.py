"""The `vpclab` command line (issue 15): every argument of every verb says what it is for,
every verb that works on a lab takes `-l LAB` (and the positional LAB where it took one),
`--version` comes from the package's metadata, and `capture -w -` asks tcpdump for a
packet-buffered pcap on stdout. Parsing only: nothing runs, no root needed.
"""
from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from dataplane.cli import capture, exec_, main
from dataplane.cli.common import EXIT_USAGE, CliError, lab_name


def parsers(p: argparse.ArgumentParser, path: str = "vpclab"):
    """(command path, parser) of `p` and every subcommand below it."""
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


def without_help(p: argparse.ArgumentParser) -> list[str]:
    return [f"{path}: {'/'.join(a.option_strings) or a.dest}"
            for path, q in parsers(p) for a in q._actions
            if not isinstance(a, argparse._SubParsersAction)
            and (a.help is None or not a.help.strip())]


def test_every_argument_of_every_verb_has_help() -> None:
    assert without_help(main.parser()) == []
    verbs = {path for path, _ in parsers(main.parser())}
    assert {"vpclab status", "vpclab flows", "vpclab cloudmap discover"} <= verbs


def test_the_walk_sees_an_argument_without_help() -> None:
    p = argparse.ArgumentParser()
    p.add_subparsers().add_parser("x").add_argument("--bare")
    assert without_help(p) == ["vpclab x: --bare"]


# Every verb that works on a lab, as a user writes it with -l.
WITH_LAB = {
    "status": ["status"],
    "down": ["down"],
    "cleanup": ["cleanup"],
    "flows": ["flows"],
    "stats": ["stats"],
    "endpoint": ["endpoint", "accept", "c/ep"],
    "logs": ["logs", "orders"],
    "exec": ["exec", "c/client", "--", "true"],
    "capture": ["capture", "c/client"],
    "trace": ["trace", "c/client", "10.0.1.5:80"],
    "cloudmap discover": ["cloudmap", "discover", "svc"],
    "cloudmap register": ["cloudmap", "register", "svc", "i1", "--ip", "10.0.0.5", "--port", "80"],
    "cloudmap deregister": ["cloudmap", "deregister", "svc", "i1"],
    "cloudmap set-health": ["cloudmap", "set-health", "svc", "i1", "HEALTHY"],
}


@pytest.mark.parametrize("verb", sorted(WITH_LAB))
def test_every_verb_on_a_lab_takes_dash_l(verb: str) -> None:
    argv = WITH_LAB[verb]
    assert lab_name(main.parse(argv[:1] + ["-l", "tclx"] + argv[1:])) == "tclx"
    assert lab_name(main.parse(argv[:1] + ["--lab", "tclx"] + argv[1:])) == "tclx"
    if "--" not in argv:        # -l after the verb's own arguments too
        assert lab_name(main.parse(argv + ["-l", "tcly"])) == "tcly"
    assert lab_name(main.parse(argv)) is None


def test_cloudmap_takes_the_lab_before_the_action_too() -> None:
    assert lab_name(main.parse(["cloudmap", "-l", "tclx", "discover", "svc"])) == "tclx"


@pytest.mark.parametrize("verb", ["status", "down", "cleanup"])
def test_the_positional_lab_still_works_and_must_agree_with_dash_l(verb: str) -> None:
    assert lab_name(main.parse([verb, "tclx"])) == "tclx"
    assert lab_name(main.parse([verb, "tclx", "-l", "tclx"])) == "tclx"
    with pytest.raises(CliError) as e:
        lab_name(main.parse([verb, "tclx", "-l", "tcly"]))
    assert e.value.code == EXIT_USAGE and "tclx" in str(e.value) and "tcly" in str(e.value)


def test_version_is_the_package_metadata(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main.parse(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"vpclab {metadata.version('vpclab')}"


def test_bad_usage_is_exit_status_2(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main.main(["status", "--no-such-option"])
    assert e.value.code == 2
    assert main.main(["status", "a", "-l", "b"]) == 2
    assert "two labs named" in capsys.readouterr().err


def test_capture_to_stdout_is_packet_buffered_pcap_and_nothing_else() -> None:
    args = main.parse(["capture", "-l", "tclx", "c/client", "-w", "-", "-c", "5", "tcp"])
    assert args.write == "-" and args.tcpdump_args == ["-c", "5", "tcp"]
    argv = capture.tcpdump_argv("/usr/bin/tcpdump", "eth0", args.write, args.tcpdump_args)
    assert argv == ["/usr/bin/tcpdump", "-n", "-i", "eth0", "-U", "-w", "-", "-c", "5", "tcp"]
    to_file = capture.tcpdump_argv("tcpdump", "eth0", "out.pcap", [])
    assert to_file[-3:] == ["-U", "-w", to_file[-1]] and to_file[-1].endswith("/out.pcap")
    assert capture.tcpdump_argv("tcpdump", "eth0", None, ["icmp"]) == [
        "tcpdump", "-n", "-i", "eth0", "-l", "icmp"]


def test_exec_without_a_command_runs_the_users_shell(monkeypatch) -> None:
    assert main.parse(["exec", "-l", "tclx", "c/client"]).cmd == []
    monkeypatch.setenv("SHELL", "/bin/zsh")
    assert exec_.command([]) == ["/bin/zsh"]
    monkeypatch.delenv("SHELL")
    assert exec_.command([]) == ["/bin/sh"]
    assert exec_.command(["ip", "addr"]) == ["ip", "addr"]
