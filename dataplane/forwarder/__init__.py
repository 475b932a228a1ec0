"""The forwarder: the C engine's wrapper, its packet I/O, the daemon that runs it in a
lab's Hyperplane namespace, spec apply, the control socket, and NLB health checking.

Only this package loads the compiled engine (dataplane._native); nothing is imported
here, so `dataplane.forwarder.control` (a plain socket client) stays engine-free.
"""
