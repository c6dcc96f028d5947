"""Our own implementations of model architectures whose published modelling code we cannot run."""
