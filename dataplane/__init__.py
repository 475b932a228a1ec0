"""vpclab's control plane: the resource model, the Hyperplane engine wrapper, the CLI."""
