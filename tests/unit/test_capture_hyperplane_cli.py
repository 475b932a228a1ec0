"""`vpclab capture --hyperplane`'s arguments: parsed beside the tcpdump form, which keeps
its own (`-c`, a filter, `-s`), and refused with a reason where they make no sense."""
from __future__ import annotations

import pytest

from dataplane.cli import capture, main
from dataplane.cli.common import EXIT_USAGE, CliError


def test_the_hyperplane_form_parses_with_or_without_an_eni() -> None:
    args = main.parse(["capture", "-l", "ttp", "--hyperplane", "eni-0abc", "--stage", "in",
                       "-w", "-", "-c", "5", "--duration", "2.5", "-s", "128"])
    assert (args.hyperplane, args.target, args.stage, args.write, args.duration, args.snaplen) == \
        (True, "eni-0abc", "in", "-", 2.5, 128)
    assert capture.count_of(args.tcpdump_args) == 5
    args = main.parse(["capture", "-l", "ttp", "--hyperplane"])
    assert args.target is None and capture.count_of(args.tcpdump_args) is None


def test_the_tcpdump_form_keeps_its_arguments() -> None:
    args = main.parse(["capture", "-l", "ttp", "c/client", "-c", "5", "tcp", "port", "80"])
    assert not args.hyperplane and args.tcpdump_args == ["-c", "5", "tcp", "port", "80"]


@pytest.mark.parametrize("words,message", [
    (["-c", "0"], "positive"), (["-c", "many"], "number"), (["tcp", "port", "80"], "no other"),
    (["-c", "3", "tcp"], "no other"),
])
def test_hyperplane_refuses_tcpdump_arguments_but_a_count(words, message) -> None:
    with pytest.raises(CliError, match=message) as exc:
        capture.count_of(words)
    assert exc.value.code == EXIT_USAGE


def test_stage_is_one_of_three() -> None:
    with pytest.raises(SystemExit):
        main.parse(["capture", "-l", "ttp", "--hyperplane", "--stage", "middle"])
