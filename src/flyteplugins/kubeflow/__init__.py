"""What the Kubeflow operators' jobs share (PyTorchJob, MPIJob, TFJob): run policy, restart and clean-pod policies,
replica checks, and how they become the common ``runPolicy`` and replica resources of their manifests. The plugins
re-export the public names, as flytekit's plugins each do."""
