"""The `vpclab` command: one module per verb, as containerlab does.

| verb | module | needs |
|---|---|---|
| `vpclab validate FILE [--name LAB] [--plan] [--json]` | validate.py | the file |
| `vpclab up FILE [--name LAB] [--diff]` | up.py | the file, root |
| `vpclab down [-l LAB \\| LAB \\| --all] [--json]` | down.py | the state file only, root |
| `vpclab status [-l LAB \\| LAB] [--json]` | status.py | the state file only |
| `vpclab exec [-l LAB] VPC/INSTANCE [-- CMD…]` | exec_.py | the state file, root |
| `vpclab capture [-l LAB] VPC/INSTANCE [-w FILE\\|-] [tcpdump args…]` | capture.py | the state file, root |
| `vpclab flows\\|stats [-l LAB] [--json]` | flows.py | the forwarder's socket, root |
| `vpclab logs [-l LAB] API\\|VPC/ALB [-f] [--json]` | logs.py | the log files |
| `vpclab endpoint accept\\|reject [-l LAB] VPC/ENDPOINT [--json]` | endpoint.py | root |
| `vpclab cloudmap [-l LAB] discover\\|register\\|deregister\\|set-health …` | cloudmap.py | the state file, root |
| `vpclab bench [e2e\\|apigw] …` | bench.py | a checkout, root |
| `vpclab cleanup [-l LAB \\| LAB] [--all] [--json]` | cleanup.py | root |
| `vpclab graph [-l LAB \\| FILE] [--format mermaid\\|dot]` | graph.py | the file, or the state file |
| `vpclab trace [-l LAB] SRC DST[:PORT] [--proto tcp\\|udp\\|icmp] [--json]` | trace.py | the state file, the forwarder's socket, root |

Exit status, every verb (main.py turns every failure into one line on stderr and one of
these; VPCLAB_DEBUG=1 shows the traceback of an unexpected one):

| status | meaning |
|---|---|
| 0 | done (also when stdout's reader went away: `vpclab flows --json \\| head -1`) |
| 1 | failed at run time: the message says what (and what was rolled back); a lab that is not up, degraded (`status`) or has no forwarder; "needs root" |
| 2 | bad usage or a bad file: a wrong option, a topology file that does not validate, a name the lab does not have; nothing was changed |
| 130 | interrupted (Ctrl-C) |

`exec` and `capture` pass the command's own exit status through (127: not found).
"""
