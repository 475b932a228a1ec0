"""Pure compilers from the model to what the lab and the forwarder consume: the
forwarder spec, DNS records, health-check plans. Nothing here touches the kernel or
loads the compiled engine.
"""
