"""VPC Flow Logs in a lab: records (records.py, pure), what the kernel counts for
instance ENIs (kernel.py), and the collector process that writes them (collector.py)."""
