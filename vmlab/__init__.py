"""vmlab: a Xen-style hypervisor simulator for teaching virtualization."""
