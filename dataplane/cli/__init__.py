"""The `vpclab` command: one module per verb, as containerlab does.

| verb | module | needs |
|---|---|---|
| `vpclab validate FILE [--name LAB] [--plan] [--json]` | validate.py | the file |
| `vpclab up FILE [--name LAB]` | up.py | the file, root |
| `vpclab down [LAB \\| --all]` | down.py | the state file only |
| `vpclab status [LAB] [--json]` | status.py | the state file only |
| `vpclab exec [-l LAB] VPC/INSTANCE -- CMD…` | exec_.py | the state file |
| `vpclab capture [-l LAB] VPC/INSTANCE [-w FILE] [tcpdump args…]` | capture.py | the state file |
| `vpclab cloudmap [-l LAB] discover\\|register\\|deregister\\|set-health …` | cloudmap.py | the state file, root |
| `vpclab cleanup [LAB] [--all]` | cleanup.py | nothing |
| `vpclab graph [-l LAB \\| FILE] [--format mermaid\\|dot]` | graph.py | the file, or the state file |

Exit status: 0 done, 1 failed (the message says what, and what was rolled back),
2 bad input (a topology file or command line that is wrong; nothing was created).
`exec` and `capture` pass the command's own exit status through.
"""
